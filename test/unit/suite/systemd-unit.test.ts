// plugin/tsmacvlan.service as systemd reads it (`systemd-analyze verify`, from Debian's systemd, which the suite's
// provisioning installs when missing), and docs/install.md's instructions for it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = join(__dirname, '../../..');
const UNIT = join(REPO, 'plugin/tsmacvlan.service');
const text = readFileSync(UNIT, 'utf8');
const scratch = mkdtempSync(join(tmpdir(), 'tsmv-unit-'));

/** What systemd says about a unit file: nothing at all, with exit status 0, when it has no complaint. */
function verify(path: string): { code: number | null; said: string } {
  const run = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', timeout: 60_000 });
  if (run.error) throw new Error(`systemd-analyze: ${run.error.message} (bash test/e2e/provision.sh installs systemd)`);
  return { code: run.status, said: `${run.stdout}${run.stderr}`.trim() };
}

describe('the systemd unit', () => {
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('verifies without a word from systemd-analyze; a broken copy does not', () => {
    expect(verify(UNIT)).toEqual({ code: 0, said: '' });
    const broken = join(scratch, 'tsmacvlan.service');
    writeFileSync(broken, text.replace('Restart=on-failure', 'Restart=sometimes'));
    expect(verify(broken).said).toContain('Failed to parse service restart specifier');
  });

  it('runs the CLI where docs/install.md installs it, and the docs point at the unit and its settings', () => {
    const readme = readFileSync(join(REPO, 'docs/install.md'), 'utf8');
    const execStart = /^ExecStart=(\S+) .*? (\S+\/dist\/cli\/main\.js) serve$/m.exec(text);
    expect(execStart).not.toBeNull();
    const [, node, main] = execStart!;
    const home = main.replace(/\/dist\/cli\/main\.js$/, '');
    expect(readme).toContain(`From a source checkout in \`${home}\``);
    expect(readme).toContain(`cd ${home} && npm ci`);
    expect(readme).toContain('install -m 644 plugin/tsmacvlan.service /etc/systemd/system/');
    expect(node).toBe('/usr/bin/node');
    expect(text).toContain(`Documentation=file://${home}/docs/install.md`);
    // The unit's own pointer names a section of docs/install.md that exists.
    const section = /docs\/install\.md, "([^"]+)"/.exec(text)?.[1];
    expect(section && readme).toMatch(new RegExp(`^#+ ${section!.replace(/[()]/g, '\\$&')}$`, 'm'));
    expect(text).toContain('EnvironmentFile=-/etc/default/tsmacvlan');
    expect(readme).toContain('/etc/default/tsmacvlan');
  });
});
