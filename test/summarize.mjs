// Adds up the suites' vitest JSON reports into the line CI reads: "N passed, N failed".
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const [dir, ...suites] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of readdirSync(dir).filter((f) => f.endsWith('.failed'))) {
  console.log(`${file.replace(/\.failed$/, '')}: ${readFileSync(join(dir, file), 'utf8').trim()}`);
  failed++;
}
for (const suite of suites) {
  const report = join(dir, `${suite}.json`);
  if (!existsSync(report)) {
    console.log(`${suite}: no report (the suite did not run to the end)`);
    failed++;
    continue;
  }
  const r = JSON.parse(readFileSync(report, 'utf8'));
  // A file that fails to load has no tests but is a failure all the same.
  const brokenFiles = r.testResults.filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length;
  console.log(
    `${suite}: ${r.numPassedTests} passed, ${r.numFailedTests + brokenFiles} failed, ${r.numPendingTests + r.numTodoTests} skipped`,
  );
  passed += r.numPassedTests;
  failed += r.numFailedTests + brokenFiles;
  skipped += r.numPendingTests + r.numTodoTests;
}
// Under CI nothing may be skipped: a suite that cannot run must fail, not vanish.
if (process.env.CI && skipped > 0) {
  console.log(`${skipped} tests skipped under CI`);
  failed += skipped;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
