// vitest with its workers on another node (test/arm64/run.sh): the main process stays on this machine's node, where
// vite transforms the files natively, and the test files run in the children it forks with process.execPath.
const node = process.env.TSMV_WORKER_NODE;
if (!node) {
  console.error('TSMV_WORKER_NODE (the node the workers run on) is not set: run bash test/arm64/run.sh');
  process.exit(2);
}
process.execPath = node;
await import('vitest/vitest.mjs');
