// The one version of tsmacvlan, package.json's: `tsmacvlan --version`, the start-up log line, the plugin's own answer
// (/Tsmacvlan.Version), status and doctor all show this. package.json sits at the package root, one level above
// this file wherever it runs from (src/ under the tests, dist/ in the package and the plugin's rootfs).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

function packageVersion(): string {
  const path = join(__dirname, '..', 'package.json');
  const version = (JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown }).version;
  if (typeof version !== 'string' || version === '') throw new Error(`${path} has no version`);
  return version;
}

export const VERSION = packageVersion();
