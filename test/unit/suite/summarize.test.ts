// The summary CI reads must fail whenever vitest did not earn a pass: real vitest runs on scratch test files, recorded
// as test/run-suite.sh records a suite (JSON report, output log, exit status), then test/summarize.mjs over them; and
// run-suite.sh itself stops a suite that hangs, at its time limit, so that the summary still comes.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = join(__dirname, '../../..');
const VITEST = join(REPO, 'node_modules/.bin/vitest');
const SUMMARIZE = join(REPO, 'test/summarize.mjs');
const RUN_SUITE = join(REPO, 'test/run-suite.sh');

const SCRATCH: Record<string, string> = {
  'passes.test.ts': `import { it, expect } from 'vitest';\nit('passes', () => expect(1).toBe(1));\n`,
  'hook.test.ts': `import { afterAll, describe, it, expect } from 'vitest';
describe('plugin', () => {
  afterAll(() => { throw new Error('the plugin daemon did not exit within 10 s of SIGTERM'); });
  it('passes', () => expect(1).toBe(1));
});\n`,
  // As in the e2e suite: a project, whose name vitest prints before the failed file's path.
  'vitest.config.ts': `export default { test: { projects: [{ test: { name: 'e2e', include: ['hook.test.ts'] } }, { test: { include: ['!(hook).test.ts'] } }] } };\n`,
  'rejection.test.ts': `import { it, expect } from 'vitest';
it('passes but leaves a rejection behind', () => {
  void Promise.reject(new Error('a rejection nobody awaited'));
  expect(1).toBe(1);
});\n`,
  'load.test.ts': `import { it } from 'vitest';\nthrow new Error('this file cannot load');\nit('never runs', () => {});\n`,
  'skipped.test.ts': `import { it, expect } from 'vitest';\nit('passes', () => expect(1).toBe(1));\nit.skip('later', () => {});\n`,
};

let dir: string;

/** Runs vitest on one scratch file the way run-all.sh runs a suite: report, log and exit status in dir. */
function runSuite(name: string, file: string): void {
  const res = spawnSync(
    VITEST,
    [
      'run',
      '--root',
      dir,
      file,
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${join(dir, `${name}.json`)}`,
    ],
    { encoding: 'utf8', timeout: 120_000, env: { ...process.env, CI: '' } },
  );
  writeFileSync(join(dir, `${name}.log`), res.stdout + res.stderr);
  writeFileSync(join(dir, `${name}.exit`), `${res.status}\n`);
}

/** The summary, with or without CI in the environment (it must not matter). */
function summarize(...suites: string[]): { code: number | null; lines: string[] } {
  const run = (CI: string) =>
    spawnSync(process.execPath, [SUMMARIZE, dir, ...suites], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, CI },
    });
  const res = run('');
  expect(run('true').stdout).toBe(res.stdout);
  return { code: res.status, lines: res.stdout.trim().split('\n') };
}

// Each case spawns node (twice: with and without CI), which a busy machine makes slow: a generous timeout.
describe('test/summarize.mjs', { timeout: 60_000 }, () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsmv-summarize-'));
    writeFileSync(join(dir, 'package.json'), '{}\n');
    for (const [file, text] of Object.entries(SCRATCH)) writeFileSync(join(dir, file), text);
    for (const file of Object.keys(SCRATCH).filter((f) => f.endsWith('.test.ts')))
      runSuite(file.replace('.test.ts', ''), file);
  }, 600_000); // six vitest runs, one after another: minutes on a busy machine
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('passes a suite whose tests pass and whose vitest exited 0', () => {
    expect(summarize('passes')).toEqual({
      code: 0,
      lines: ['passes: 1 passed, 0 failed, 0 skipped', '1 passed, 0 failed'],
    });
  });

  it('fails a suite whose afterAll throws, with the hook message', () => {
    expect(summarize('hook')).toEqual({
      code: 1,
      lines: [
        'hook: 1 passed, 1 failed, 0 skipped',
        'hook: FAILED hook.test.ts > plugin: Error: the plugin daemon did not exit within 10 s of SIGTERM',
        '1 passed, 1 failed',
      ],
    });
  });

  it('fails a suite with an unhandled rejection though its report says success', () => {
    expect(summarize('rejection')).toEqual({
      code: 1,
      lines: [
        'rejection: 1 passed, 1 failed, 0 skipped',
        'rejection: FAILED Unhandled Rejection: Error: a rejection nobody awaited',
        '1 passed, 1 failed',
      ],
    });
  });

  it('fails a file that cannot load, with its error', () => {
    const { code, lines } = summarize('load');
    expect(code).toBe(1);
    expect(lines).toContainEqual(expect.stringMatching(/^load: FAILED \S*load\.test\.ts: this file cannot load$/));
    expect(lines.at(-1)).toBe('0 passed, 1 failed');
  });

  it('fails a missing or truncated report and still prints the summary line', () => {
    writeFileSync(join(dir, 'truncated.json'), '{"numPassedTests": 3, "testRes');
    writeFileSync(join(dir, 'truncated.exit'), '0\n');
    const { code, lines } = summarize('passes', 'truncated', 'missing');
    expect(code).toBe(1);
    expect(lines.filter((l) => l.includes('FAILED'))).toEqual([
      expect.stringMatching(/^truncated: FAILED its report truncated.json is unreadable/),
      'missing: FAILED no report missing.json (the suite did not run to the end)',
      'missing: FAILED no exit status recorded for vitest',
    ]);
    expect(lines.at(-1)).toBe('1 passed, 3 failed');
  });

  it('fails a suite whose vitest exited non-zero although its report says success', () => {
    writeFileSync(join(dir, 'exited.json'), JSON.stringify({ success: true, numPassedTests: 1, testResults: [] }));
    writeFileSync(join(dir, 'exited.exit'), '137\n');
    expect(summarize('exited').lines).toEqual([
      'exited: 1 passed, 1 failed, 0 skipped',
      'exited: FAILED vitest exited 137',
      '1 passed, 1 failed',
    ]);
  });

  it('fails a skipped test, CI or not', () => {
    expect(summarize('skipped')).toEqual({
      code: 1,
      lines: [
        'skipped: 1 passed, 0 failed, 1 skipped',
        '1 tests skipped: each counts as a failure (a test that cannot run here must fail, not vanish)',
        '1 passed, 1 failed',
      ],
    });
  });

  it('stops a suite that hangs at its time limit, with every process of its group, and names it', () => {
    const started = Date.now();
    const script = `sleep 987 & echo $! > ${join(dir, 'child.pid')}; wait`;
    const res = spawnSync('bash', [RUN_SUITE, dir, 'hung', '2', 'bash', '-c', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(res.stderr).toContain('[run-suite] hung: stopped after its time limit of 2 s');
    expect(readFileSync(join(dir, 'hung.exit'), 'utf8')).toBe('124\n');
    const child = readFileSync(join(dir, 'child.pid'), 'utf8').trim();
    expect(existsSync(`/proc/${child}`) && !/\) Z /.test(readFileSync(`/proc/${child}/stat`, 'utf8'))).toBe(false);
    expect(summarize('hung')).toEqual({
      code: 1,
      lines: [
        'hung: 0 passed, 1 failed, 0 skipped',
        'hung: FAILED stopped after its time limit of 2 s: it hung or ran far slower than usual (see hung.log)',
        '0 passed, 1 failed',
      ],
    });
  });
});
