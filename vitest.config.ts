import { defineConfig } from 'vitest/config';

// The lab's Docker Engine (test/lab/in-lab.sh, TSMV_ENGINE): files of options older engines refuse run only on an
// engine that has them, excluded elsewhere rather than skipped (CI counts a skipped test as a failure).
const engineMajor = Number((process.env.TSMV_ENGINE ?? '20.10').split('.')[0]);
// Docker's null IPAM gives an IPv6 pool from 28.0 (before, it refuses --ipv6): SLAAC and DHCPv6 networks need it.
const newerEngineFiles =
  engineMajor >= 28 ? [] : ['test/e2e/engine-28.test.ts', 'test/e2e/slaac.test.ts', 'test/e2e/dhcp6*.test.ts'];
// Files whose engine does not matter (the CLI and Docker's plugin store, the same on every engine: uninstall, a plugin
// pulled from a registry; the arm64 plugin under emulation, slow, with engines that are amd64 either way; host-access,
// the plugin's own shim on the host, where Docker only moves the link as for every endpoint): once, on the newest.
// Upgrading the managed plugin with containers running takes minutes, and Docker's upgrade is the same code from 20.10
// to 28.x (moby's plugin manager): once too.
const newestEngineOnly =
  engineMajor >= 28
    ? []
    : [
        'test/e2e/plugin-uninstall.test.ts',
        'test/e2e/upgrade.test.ts',
        'test/e2e/arm64.test.ts',
        'test/e2e/registry.test.ts',
        'test/e2e/host-access.test.ts',
      ];
// Files that test no engine run once, in the 20.10 run: the multi-host files start hosts of their own with the lab's
// engine (they test etcd's coordination), and the metrics file checks the plugin's figures.
const onceFiles = engineMajor === 20 ? [] : ['test/e2e/multi-host*.test.ts', 'test/e2e/metrics.test.ts'];
// The fault soak starts a multi-host lab of its own and tests no engine either: once, in the 26.1 run
// (about 160-190 s with its lab's start and the final checks).
const soakOnce = engineMajor === 26 ? [] : ['test/e2e/chaos.test.ts'];
// Probe before use: a container's --ip reaches the IPAM with its MAC (20.10) or without (26.1 and later, like an
// --aux-address): 20.10 and 28.5 cover both forms. The run of 26.1, which carries the soak, also leaves out what the
// oldest and the newest engine bound, where the plugin's side is what is tested: 100 containers at once (resilience),
// a plugin killed at each crash point (crash.e2e) and Compose (the client's plugin, sid's, on every engine).
const oneFormFiles =
  engineMajor === 26
    ? [
        'test/e2e/probe.test.ts',
        'test/e2e/resilience.test.ts',
        'test/e2e/crash.e2e.test.ts',
        'test/e2e/compose.test.ts',
      ]
    : [];
// test/arm64/run.sh runs unit and integration files on another architecture's node: a set-up file checks they do.
const archCheck = process.env.TSMV_TEST_ARCH ? ['test/arm64/require-arch.ts'] : [];

// One project per suite: each needs a different environment (see test/run-all.sh).
export default defineConfig({
  test: {
    pool: 'forks',
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], setupFiles: archCheck } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          setupFiles: ['test/integration/require-netns.ts', ...archCheck],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          exclude: [...newerEngineFiles, ...newestEngineOnly, ...onceFiles, ...oneFormFiles, ...soakOnce],
          setupFiles: ['test/lab/require-lab.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'vm',
          include: ['test/vm/**/*.test.ts'],
          setupFiles: ['test/vm/require-vm.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
