// `memory` section: the plugin's own footprint and its restart, each alone in a private network namespace, this
// build beside another (BENCH_BASE_CLI: e.g. main's dist/cli/main.js, built in a checkout of its own) and beside
// itself with more node flags (BENCH_MEMORY_FLAGS, e.g. --optimize-for-size), interleaved in one run. populateMs, the
// endpoints created one at a time, is also what a flag costs per request.
//   idle      RSS 2 s after the start, no network at all, and 15 s after it (settled: V8's memory reducer has run)
//   peak      VmHWM once BENCH_MEMORY_ENDPOINTS endpoints were created and joined one at a time
//   restart   the plugin stopped and started again on the last variant's state and links, each variant in turn
//             (BENCH_RESTARTS times): ms from the spawn to the first answered request (requests wait for the
//             reconcile), and the RSS then
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CELL_WRAP, makeCell } from './api.mjs';
import {
  CLI,
  envInt,
  log,
  median,
  memoryOf,
  round,
  shuffle,
  sleep,
  spawnTracked,
  startPlugin,
  tempDir,
} from './lib.mjs';
import { PluginClient, SHIPPED_NODE_ARGS } from './lib.mjs';

/** RSS 2 s after the start and once V8's memory reducer has run on an idle heap (it starts about 8 s in). */
async function idle({ cli, nodeArgs, shipped }) {
  const dir = tempDir('tsmv-bench-idle-');
  const plugin = await startPlugin({
    socket: join(dir, 'plugin.sock'),
    stateDir: dir,
    wrap: CELL_WRAP,
    cli,
    nodeArgs,
    shipped,
  });
  await sleep(2000);
  const memory = memoryOf(plugin.pid);
  await sleep(IDLE_SETTLE_MS - 2000);
  const settled = memoryOf(plugin.pid);
  await plugin.stop();
  return { ...memory, settledRssMiB: settled.rssMiB };
}

const IDLE_SETTLE_MS = 15_000;

/** Asks `child` (started with --heapsnapshot-signal=SIGUSR2) for a heap snapshot and waits until it is written. */
async function heapSnapshot(child, dir) {
  const count = () => readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')).length;
  const before = count();
  child.kill('SIGUSR2');
  for (let i = 0; i < 300 && count() === before; i++) await sleep(100);
  await sleep(1000); // the file is named first, then written
}

/** Spawn to the first answered Plugin.Activate (every request waits for the state and the reconcile), polled every 2 ms. */
async function restart(cell, { cli, nodeArgs, shipped }, name) {
  const netns = `/proc/${cell.worker.child.pid}/ns/net`;
  const socket = join(cell.dir, 'plugin.sock');
  // BENCH_RESTART_PROF=<dir>: each restart writes a CPU profile there (node --cpu-prof), named after its variant.
  const dir = process.env.BENCH_RESTART_PROF;
  const prof = dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : [];
  // BENCH_RESTART_HEAP=<dir>: a heap snapshot of each restarted plugin, taken after its figures.
  const heapDir = process.env.BENCH_RESTART_HEAP;
  if (heapDir) prof.push(`--diagnostic-dir=${heapDir}`, '--heapsnapshot-signal=SIGUSR2');
  const argv = ['nsenter', `--net=${netns}`, process.execPath, ...shipped, ...nodeArgs, ...prof, cli, 'serve'];
  argv.push('--socket', socket, '--state-dir', join(cell.dir, 'state'), '--log-level', 'warn');
  const t0 = performance.now();
  const child = spawnTracked(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  const client = new PluginClient(socket);
  try {
    for (;;) {
      const ok = await client.post('Plugin.Activate').then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (child.exitCode !== null) throw new Error(`restarted plugin exited (${child.exitCode})`);
      if (performance.now() - t0 > 60_000) throw new Error('restarted plugin did not answer within 60 s');
      await sleep(2);
    }
    const ms = performance.now() - t0;
    const got = { firstAnswerMs: round(ms, 0), memory: memoryOf(child.pid) };
    if (heapDir) await heapSnapshot(child, heapDir);
    return got;
  } finally {
    client.close();
    child.kill('SIGTERM');
    await child.exited;
  }
}

/** Idle and peak figures of one variant: its own plugin, `endpoints` created and joined one at a time. */
async function measure(how, endpoints, n) {
  const out = { idle: await idle(how) };
  const cell = await makeCell(`mem${n}`, { subnet: '10.235.128.0/17', records: 0, variants: [], plugin: how });
  const made = await cell.populate(endpoints, 1);
  out.populateMs = round(made.ms, 0);
  out.peak = memoryOf(cell.plugin.pid);
  // A variant started with --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=<dir> leaves a heap snapshot at its peak.
  const dir = how.nodeArgs.find((a) => a.startsWith('--diagnostic-dir='))?.split('=')[1];
  if (dir && how.nodeArgs.includes('--heapsnapshot-signal=SIGUSR2'))
    await heapSnapshot({ kill: (signal) => process.kill(cell.plugin.pid, signal) }, dir);
  await cell.plugin.stop();
  return { out, cell };
}

export async function benchMemory() {
  const endpoints = envInt('BENCH_MEMORY_ENDPOINTS', 4000);
  const rounds = envInt('BENCH_MEMORY_ROUNDS', 2);
  const restarts = envInt('BENCH_RESTARTS', 5);
  const variants = { this: { cli: CLI, nodeArgs: [], shipped: SHIPPED_NODE_ARGS } };
  // The other build runs with the node flags it shipped with (BENCH_BASE_NODE_ARGS; default: this build's).
  const baseArgs = process.env.BENCH_BASE_NODE_ARGS?.split(' ').filter(Boolean) ?? SHIPPED_NODE_ARGS;
  if (process.env.BENCH_BASE_CLI) variants.base = { cli: process.env.BENCH_BASE_CLI, nodeArgs: [], shipped: baseArgs };
  // Node flags to weigh beside the shipped ones: variants of this build of their own, separated by commas.
  for (const [i, set] of (process.env.BENCH_MEMORY_FLAGS ?? '')
    .split(',')
    .filter((f) => f.trim())
    .entries())
    variants[`flags${i + 1}`] = { cli: CLI, nodeArgs: set.split(' ').filter(Boolean), shipped: SHIPPED_NODE_ARGS };
  const samples = Object.fromEntries(Object.keys(variants).map((v) => [v, { sizes: [], restarts: [] }]));
  let n = 0;
  let last;
  for (let r = 0; r < rounds; r++)
    for (const name of shuffle(Object.keys(variants))) {
      log(`memory: round ${r + 1}/${rounds}, ${name} (${JSON.stringify(variants[name])}), ${endpoints} endpoints`);
      if (last) await last.worker.exit();
      const { out, cell } = await measure(variants[name], endpoints, n++);
      samples[name].sizes.push(out);
      last = cell;
    }
  // Every variant restarts on the same state and links (the last cell's), interleaved.
  for (let r = 0; r < restarts; r++)
    for (const name of shuffle(Object.keys(variants))) {
      const got = await restart(last, variants[name], name);
      log(`memory: restart ${r + 1}/${restarts}, ${name}: first answer after ${got.firstAnswerMs} ms`);
      samples[name].restarts.push(got);
    }
  await last.worker.exit();
  const med = (list) => round(median(list), 1);
  const summarize = ({ sizes, restarts: list }) => ({
    idleRssMiB: med(sizes.map((s) => s.idle.rssMiB)),
    idleSettledRssMiB: med(sizes.map((s) => s.idle.settledRssMiB)),
    peakRssMiB: med(sizes.map((s) => s.peak.peakRssMiB)),
    populateMs: med(sizes.map((s) => s.populateMs)),
    restartFirstAnswerMs: med(list.map((s) => s.firstAnswerMs)),
    restartRssMiB: med(list.map((s) => s.memory.rssMiB)),
  });
  const result = { endpoints, rounds, restarts, variants, samples };
  for (const name of Object.keys(variants)) result[name] = summarize(samples[name]);
  return result;
}
