// Adds up the suites' results into the line CI reads: "N passed, N failed". A suite passes only when vitest exited 0
// (run-suite.sh records it in <suite>.exit) AND its JSON report says success: the report alone misses unhandled errors,
// and counts a throwing hook only as a failed suite, never as a failed test. Each such failure is counted and printed
// with its message (from the report, or from vitest's own output in <suite>.log); a suite stopped at its time limit
// (<suite>.timeout) is named as such. A skipped test counts as a failure whoever runs this, CI or not: a test that
// cannot run here must fail, not vanish.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const read = (path) => (existsSync(path) ? readFileSync(path, 'utf8') : undefined);

/** Messages of what vitest printed as failed suites (hooks, file set-up) and unhandled errors, from its output. */
export function problemsInLog(text) {
  const lines = text.replace(/\x1b\[[0-9;]*m/g, '').split('\n');
  const problems = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const header = /^⎯+ (.+?) ⎯+$/.exec(lines[i].trim());
    if (header) {
      section = header[1];
      if (/^(Unhandled (Rejection|Error)|Uncaught \w+)$/.test(section))
        problems.push(`${section}: ${lines[i + 1]?.trim() ?? ''}`);
      continue;
    }
    // With projects vitest names the project before the path: ` FAIL   e2e  test/x.test.ts > suite`.
    const failedSuite = /^ FAIL {2,}(?:[\w-]+ {2,})?(.+)$/.exec(lines[i]);
    if (failedSuite && section.startsWith('Failed Suites')) problems.push(`${failedSuite[1]}: ${lines[i + 1]?.trim()}`);
  }
  return problems;
}

/** One suite's counts and the failures that are not failed tests (each counts as one failure). */
export function summarizeSuite(dir, suite) {
  const problems = [];
  const limit = read(join(dir, `${suite}.timeout`))?.trim();
  if (limit)
    problems.push(
      `stopped after its time limit of ${limit} s: it hung or ran far slower than usual (see ${suite}.log)`,
    );
  const exitText = read(join(dir, `${suite}.exit`))?.trim();
  const exit = exitText ? Number(exitText) : undefined;
  const logged = problemsInLog(read(join(dir, `${suite}.log`)) ?? '');
  let report = null;
  try {
    report = JSON.parse(read(join(dir, `${suite}.json`)) ?? 'null');
    if (report === null && !limit) problems.push(`no report ${suite}.json (the suite did not run to the end)`);
  } catch (err) {
    problems.push(`its report ${suite}.json is unreadable (${err.message}): vitest did not finish writing it`);
  }
  const counts = {
    passed: report?.numPassedTests ?? 0,
    failed: report?.numFailedTests ?? 0,
    skipped: (report?.numPendingTests ?? 0) + (report?.numTodoTests ?? 0),
  };
  for (const file of report?.testResults ?? []) {
    // A file that failed to load, or whose hook threw, failed although none of its tests did.
    if (file.status !== 'failed' || file.assertionResults.some((t) => t.status === 'failed')) continue;
    const path = relative(process.cwd(), file.name);
    const hook = logged.find((p) => path.endsWith(p.split(' > ')[0]));
    problems.push(file.message ? `${path}: ${file.message}` : (hook ?? `${path}: failed outside its tests (a hook)`));
  }
  problems.push(...logged.filter((p) => /^(Unhandled|Uncaught) /.test(p)));
  if (exit === undefined && !limit) problems.push('no exit status recorded for vitest');
  else if (exit !== 0 && counts.failed + problems.length === 0) problems.push(`vitest exited ${exit}`);
  if (report && !report.success && counts.failed + problems.length === 0)
    problems.push('its report says it did not succeed');
  counts.failed += problems.length;
  return { ...counts, problems };
}

function main() {
  const [dir, ...suites] = process.argv.slice(2);
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.failed'))) {
    console.log(`${file.replace(/\.failed$/, '')}: ${readFileSync(join(dir, file), 'utf8').trim()}`);
    failed++;
  }
  for (const suite of suites) {
    const s = summarizeSuite(dir, suite);
    console.log(`${suite}: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
    for (const p of s.problems) console.log(`${suite}: FAILED ${p}`);
    passed += s.passed;
    failed += s.failed;
    skipped += s.skipped;
  }
  if (skipped > 0) {
    console.log(
      `${skipped} tests skipped: each counts as a failure (a test that cannot run here must fail, not vanish)`,
    );
    failed += skipped;
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
