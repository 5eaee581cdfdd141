// The arm64 plugin under emulation beside the amd64 one, each run from its own rootfs (plugin/build-arm64 by
// plugin/arch/rootfs.sh, plugin/build by plugin/create.sh; test/e2e/provision.sh leaves both), each in a cell of its
// own (api.mjs): the arm64 node under qemu's user-mode emulator, registered with binfmt_misc for the section under
// a name of its own (test/lab/qemu-binfmt.sh). Measures, interleaved in a fresh random order each round:
//   start     spawn to the first Plugin.Activate answered on the socket
//   life      one endpoint's life through the API (RequestAddress … ReleaseAddress), as api.mjs measures it
// A ratio for the record: emulation is not an ARM board (a Raspberry Pi 4 runs arm64 code natively).
//   BENCH_ARM64_STARTS=3   BENCH_ARM64_LIVES=30   BENCH_ARM64_WARMUP=5
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { lives, makeCell } from './api.mjs';
import { ROOT, envInt, log, onCleanup, ratio, round, run, shuffle, startPlugin, summary, tempDir } from './lib.mjs';

const ROOTFS = { amd64: join(ROOT, 'plugin/build/rootfs'), arm64: join(ROOT, 'plugin/build-arm64/rootfs') };
const QEMU = join(ROOT, '.cache/qemu/qemu-aarch64');
const BINFMT = join(ROOT, 'test/lab/qemu-binfmt.sh');

/** How startPlugin runs each architecture's plugin: its own node and its own copy of the CLI. */
function how(arch) {
  const rootfs = ROOTFS[arch];
  const node = join(rootfs, 'usr/local/bin/node');
  return {
    // arm64: the kernel hands the aarch64 node to qemu (binfmt_misc); its loader and libraries are the rootfs's.
    node: arch === 'arm64' ? ['env', `QEMU_LD_PREFIX=${rootfs}`, node] : [node],
    cli: join(rootfs, 'opt/tsmacvlan/dist/cli/main.js'),
    startTimeoutMs: arch === 'arm64' ? 600_000 : 60_000,
  };
}

export async function benchArm64() {
  for (const [arch, rootfs] of Object.entries(ROOTFS))
    if (!existsSync(join(rootfs, 'opt/tsmacvlan/dist/cli/main.js')))
      throw new Error(`no ${arch} rootfs in ${rootfs}: bash test/e2e/provision.sh builds both`);
  if (!existsSync(QEMU)) throw new Error(`no ${QEMU}: bash plugin/arch/fetch.sh qemu arm64`);
  const name = `tsmv-bench-${process.pid}-aarch64`;
  await run('bash', [BINFMT, 'register', name, QEMU]);
  onCleanup(() => run('bash', [BINFMT, 'unregister', name], { allowFail: true }));

  const startMs = { amd64: [], arm64: [] };
  for (let r = 0; r < envInt('BENCH_ARM64_STARTS', 3); r++) {
    for (const arch of shuffle(['amd64', 'arm64'])) {
      const dir = tempDir(`tsmv-bench-start-${arch}-`);
      const t0 = performance.now();
      const plugin = await startPlugin({ socket: join(dir, 'plugin.sock'), stateDir: dir, ...how(arch) });
      startMs[arch].push(performance.now() - t0);
      await plugin.stop();
    }
    log(
      `  arm64: start ${r + 1}: amd64 ${round(startMs.amd64.at(-1), 0)} ms, arm64 ${round(startMs.arm64.at(-1), 0)} ms`,
    );
  }

  const cells = [];
  for (const [i, arch] of ['amd64', 'arm64'].entries())
    cells.push(await makeCell(arch, { subnet: `10.${90 + i}.0.0/16`, variants: ['api'], plugin: how(arch) }));
  const life = await lives(cells, envInt('BENCH_ARM64_LIVES', 30), envInt('BENCH_ARM64_WARMUP', 5));
  const start = { amd64: summary(startMs.amd64), arm64: summary(startMs.arm64) };
  return {
    startToSocketMs: start,
    startArm64OverAmd64: ratio(start.arm64.median, start.amd64.median),
    life: { amd64: life.amd64.api, arm64: life.arm64.api },
    lifeArm64OverAmd64: ratio(life.arm64.api.median, life.amd64.api.median),
    cpuMsPerLife: { amd64: life.amd64.cpuMsPerLife.api, arm64: life.arm64.cpuMsPerLife.api },
  };
}
