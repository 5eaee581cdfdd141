// What metrics cost Docker's requests (issue 25): `docker network connect` + `disconnect` of a running container on
// two tsmacvlan networks with the plugin's own IPAM, one served by a plugin without metrics, one by a plugin with
// --metrics-address, scraped every second meanwhile (Prometheus's default is every 15 s: this is the harsher case).
// Every round runs both in a fresh random order; the ratio (on ÷ off) compares medians of the same run. Also each
// plugin's memory after the rounds.
//
// Same set-up rules as docker.mjs: a veth parent whose peer sits in a namespace of ours (tsbench-*), Docker objects
// named tsmv-bench-metrics-*, subnets inside 10.235.0.0/16, drivers of their own.
import { createServer } from 'node:net';
import {
  DOCKER,
  envInt,
  hex,
  log,
  median,
  memoryOf,
  onCleanup,
  ratio,
  ratioInterval,
  removeDockerObjects,
  requestTimes,
  round,
  run,
  shuffle,
  startPlugin,
  summary,
  tempDir,
  timed,
} from './lib.mjs';

const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
const PREFIX = 'tsmv-bench-metrics-';
const LINK_PREFIX = 'tsbench';
const SCRAPE_EVERY_MS = 1000;

const docker = (args, opts) => run(DOCKER, args, opts);

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function benchMetrics() {
  if (!process.env.TSMV_ENGINE_ROOT)
    throw new Error('the metrics bench drives only a lab engine of its own: run it with npm run bench');
  const rounds = envInt('BENCH_METRICS_ROUNDS', 60);
  const warmup = envInt('BENCH_METRICS_WARMUP', 2);

  const id = hex(3);
  const ns = `${LINK_PREFIX}-${id}`;
  const parent = `${LINK_PREFIX}${id}`;
  onCleanup(async () => {
    await run('ip', ['netns', 'del', ns], { allowFail: true });
    await run('ip', ['link', 'del', parent], { allowFail: true });
  });
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', `${parent}p`, 'netns', ns]);
  await run('ip', ['-n', ns, 'link', 'set', `${parent}p`, 'up']);
  await run('ip', ['link', 'set', parent, 'up']);

  const metricsAt = `127.0.0.1:${await freePort()}`;
  const plugins = {};
  for (const [variant, args] of [
    ['off', []],
    ['on', ['--metrics-address', metricsAt]],
  ]) {
    const driver = `${PREFIX}${variant}`;
    const plugin = await startPlugin({
      socket: `/run/docker/plugins/${driver}.sock`,
      stateDir: tempDir(`tsmv-bench-metrics-${variant}-`),
      args,
    });
    onCleanup(() => plugin.stop());
    plugins[variant] = { driver, plugin };
  }
  // Registered after the plugins: runs before they stop (Docker needs them to remove its networks).
  onCleanup(() => removeDockerObjects(PREFIX));
  await removeDockerObjects(PREFIX);

  const networks = {};
  for (const [variant, third] of [
    ['off', 5],
    ['on', 6],
  ]) {
    const { driver } = plugins[variant];
    networks[variant] = `${PREFIX}net-${variant}`;
    await docker(
      ['network', 'create', '-d', driver, '--ipam-driver', driver, '-o', `parent=${parent}`].concat([
        '--subnet',
        `10.235.${third}.0/24`,
        '--ip-range',
        `10.235.${third}.128/25`,
        networks[variant],
      ]),
    );
  }
  const bridge = `${PREFIX}bridge`;
  await docker(['network', 'create', '-d', 'bridge', '--subnet', '10.235.7.0/24', bridge]);
  const sleeper = `${PREFIX}sleeper`;
  await docker(['run', '-d', '--name', sleeper, '--network', bridge, IMAGE, 'sleep', '3600']);

  // The scraper: GET /metrics every second for the whole run, each scrape's time kept.
  const scrapes = [];
  let scraping = true;
  const scraper = (async () => {
    while (scraping) {
      const t0 = performance.now();
      const response = await fetch(`http://${metricsAt}/metrics`);
      const text = await response.text();
      if (response.status !== 200 || !text.includes('tsmacvlan_request_duration_seconds'))
        throw new Error(`scrape of ${metricsAt} failed: ${response.status}`);
      scrapes.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, SCRAPE_EVERY_MS));
    }
  })();

  const samples = { off: [], on: [] };
  const once = async (variant, keep) => {
    const c = await timed(DOCKER, ['network', 'connect', networks[variant], sleeper]);
    const d = await timed(DOCKER, ['network', 'disconnect', networks[variant], sleeper]);
    if (keep) samples[variant].push(c.ms + d.ms);
  };
  log(`metrics: ${warmup} warm-up + ${rounds} rounds × (metrics off, metrics on and scraped every 1 s), shuffled`);
  const logFrom = {};
  try {
    for (let r = 0; r < warmup; r++) for (const v of shuffle(['off', 'on'])) await once(v, false);
    for (const v of ['off', 'on']) logFrom[v] = plugins[v].plugin.logPosition();
    for (let r = 0; r < rounds; r++) {
      for (const v of shuffle(['off', 'on'])) await once(v, true);
      if ((r + 1) % 20 === 0) log(`  metrics: ${r + 1}/${rounds} rounds`);
    }
  } finally {
    scraping = false;
    await scraper;
  }
  // The plugin's own time per connect+disconnect: the medians of its requests (each runs once per cycle), from its log.
  const own = {};
  for (const v of ['off', 'on']) {
    const times = requestTimes(plugins[v].plugin.logLines(logFrom[v]));
    own[v] = { perCycleMs: round(Object.values(times).reduce((sum, t) => sum + t.medianMs, 0)), requests: times };
  }
  return {
    rounds,
    pluginOwnMs: own,
    pluginOwnOnOverOff: ratio(own.on.perCycleMs, own.off.perCycleMs),
    warmupRounds: warmup,
    connectDisconnect: { off: summary(samples.off), on: summary(samples.on) },
    onOverOff: ratio(median(samples.on), median(samples.off)),
    onOverOffInterval95: ratioInterval(samples.on, samples.off),
    pairedRatioMedian: round(median(samples.on.map((t, i) => t / samples.off[i]))),
    scrapes: { n: scrapes.length, ...summary(scrapes) },
    pluginMemory: { off: memoryOf(plugins.off.plugin.pid), on: memoryOf(plugins.on.plugin.pid) },
  };
}
