// Set-up file of the unit and integration suites when test/arm64/run.sh runs them on another architecture's node
// (TSMV_TEST_ARCH): a worker on this machine's own node would pass every test and prove nothing.
const wanted = process.env.TSMV_TEST_ARCH;
if (process.arch !== wanted)
  throw new Error(
    `this test worker runs on ${process.arch} node ${process.version}, not on ${wanted}: see test/arm64/run.sh`,
  );
