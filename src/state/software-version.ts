// The version of tsmacvlan this code is (package.json's), for the state's format marker and its messages.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

let version: string | undefined;

/** package.json's version (dist/ and src/ are both two levels below it), or 'unknown' when it cannot be read. */
export function softwareVersion(): string {
  if (version === undefined) {
    try {
      version = String(
        (JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: unknown }).version,
      );
    } catch {
      version = 'unknown';
    }
  }
  return version;
}
