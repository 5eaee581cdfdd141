// `memory` section: the plugin's own footprint and its restart, each alone in a private network namespace, this
// build beside another (BENCH_BASE_CLI: e.g. main's dist/cli/main.js, built in a checkout of its own) and beside
// itself with more node flags (BENCH_MEMORY_FLAGS, e.g. --optimize-for-size), interleaved in one run. populateMs, the
// endpoints created one at a time, is also what a flag costs per request.
//   idle      RSS 2 s after the start, no network at all
//   peak      VmHWM once BENCH_MEMORY_ENDPOINTS endpoints were created and joined one at a time
//   restart   the plugin stopped and started again on that state and those links: ms from the spawn to the first
//             answered request (requests wait for the reconcile), and the RSS then
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
  await plugin.stop();
  return memory;
}

/** Spawn to the first answered Plugin.Activate, polled every 2 ms. */
async function restart(cell, { cli, nodeArgs, shipped }) {
  const netns = `/proc/${cell.worker.child.pid}/ns/net`;
  const socket = join(cell.dir, 'plugin.sock');
  // BENCH_RESTART_PROF=<dir>: each restart writes a CPU profile there (node --cpu-prof), named after its variant.
  const prof = process.env.BENCH_RESTART_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_RESTART_PROF}`] : [];
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
    return { firstAnswerMs: round(ms, 0), memory: memoryOf(child.pid) };
  } finally {
    client.close();
    child.kill('SIGTERM');
    await child.exited;
  }
}

async function measure(how, endpoints, n) {
  const out = { idle: await idle(how) };
  const cell = await makeCell(`mem${n}`, { subnet: '10.235.128.0/17', records: 0, variants: [], plugin: how });
  const made = await cell.populate(endpoints, 1);
  out.populateMs = round(made.ms, 0);
  out.peak = memoryOf(cell.plugin.pid);
  await cell.plugin.stop();
  out.restart = await restart(cell, how);
  await cell.worker.exit();
  return out;
}

export async function benchMemory() {
  const endpoints = envInt('BENCH_MEMORY_ENDPOINTS', 4000);
  const rounds = envInt('BENCH_MEMORY_ROUNDS', 2);
  const variants = { this: { cli: CLI, nodeArgs: [], shipped: SHIPPED_NODE_ARGS } };
  // The other build runs with the node flags it shipped with (BENCH_BASE_NODE_ARGS; default: this build's).
  const baseArgs = process.env.BENCH_BASE_NODE_ARGS?.split(' ').filter(Boolean) ?? SHIPPED_NODE_ARGS;
  if (process.env.BENCH_BASE_CLI) variants.base = { cli: process.env.BENCH_BASE_CLI, nodeArgs: [], shipped: baseArgs };
  // Node flags to weigh beside the shipped ones: their own variant of this build.
  const flags = (process.env.BENCH_MEMORY_FLAGS ?? '').split(' ').filter(Boolean);
  if (flags.length) variants.flags = { cli: CLI, nodeArgs: flags, shipped: SHIPPED_NODE_ARGS };
  const samples = Object.fromEntries(Object.keys(variants).map((v) => [v, []]));
  let n = 0;
  for (let r = 0; r < rounds; r++)
    for (const name of shuffle(Object.keys(variants))) {
      log(`memory: round ${r + 1}/${rounds}, ${name} (${JSON.stringify(variants[name])}), ${endpoints} endpoints`);
      samples[name].push(await measure(variants[name], endpoints, n++));
    }
  const summarize = (list) => ({
    idleRssMiB: round(median(list.map((s) => s.idle.rssMiB)), 1),
    peakRssMiB: round(median(list.map((s) => s.peak.peakRssMiB)), 1),
    restartFirstAnswerMs: round(median(list.map((s) => s.restart.firstAnswerMs)), 1),
    restartRssMiB: round(median(list.map((s) => s.restart.memory.rssMiB)), 1),
    populateMs: round(median(list.map((s) => s.populateMs)), 1),
  });
  const result = { endpoints, rounds, variants, samples };
  for (const name of Object.keys(variants)) result[name] = summarize(samples[name]);
  return result;
}
