// tsmacvlan under a real Docker Engine (Debian's 20.10, the lab's own: test/lab/in-lab.sh), side by side with Docker's
// own drivers, in the host namespace:
//   benchDocker     `docker network connect` + `disconnect` of a running container, and `docker run --rm` of a trivial
//                   container, on Docker's built-in macvlan, on tsmacvlan (Docker's default IPAM), on tsmacvlan with
//                   its own IPAM (which probes each address on the LAN first) and with its own IPAM and
//                   --ipam-opt probe=off, all on one parent; every round runs the four in a fresh random order.
//   benchDataPlane  TCP throughput (iperf3) and ping round trips between two containers on tsmacvlan (macvlan bridge
//                   mode) vs two on a user-defined Docker bridge network, interleaved. iperf3 and ping are the host's,
//                   run in the containers' namespaces with nsenter (the busybox image has neither).
//
// The parent is one end of a veth pair whose other end sits, up, in a namespace of the bench's own (tsbench-*); names
// avoid the e2e tests' "tsmv" prefix, whose clean-up removes such links. Docker objects are all named tsmv-bench-*,
// subnets are inside 10.235.0.0/16, and the plugin runs as the driver tsmv-bench-plugin (not tsmacvlan-test, which
// the e2e tests may be using at the same time).
import {
  hex,
  log,
  median,
  memoryOf,
  onCleanup,
  percentile,
  ratio,
  ratioInterval,
  requestTimes,
  round,
  run,
  shuffle,
  sleep,
  spawnTracked,
  startPlugin,
  summary,
  tempDir,
  timed,
  envInt,
  DOCKER,
  removeDockerObjects,
} from './lib.mjs';

const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
const PREFIX = 'tsmv-bench-';
const DRIVER = 'tsmv-bench-plugin';
const SOCKET = `/run/docker/plugins/${DRIVER}.sock`;
const LINK_PREFIX = 'tsbench';

const docker = (args, opts) => run(DOCKER, args, opts);
const dockerOut = async (args, opts) => (await docker(args, opts)).stdout.trim();

/** Namespaces and links a crashed run of the bench left (tsbench*); nothing else. */
async function removeLeftoverLinks() {
  const namespaces = (await run('ip', ['netns', 'list'], { allowFail: true })).stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n) => n?.startsWith(`${LINK_PREFIX}-`));
  for (const ns of namespaces) await run('ip', ['netns', 'del', ns], { allowFail: true });
  const links = JSON.parse((await run('ip', ['-j', 'link', 'show'])).stdout || '[]');
  for (const { ifname } of links)
    if (ifname?.startsWith(LINK_PREFIX)) await run('ip', ['link', 'del', ifname], { allowFail: true });
}

/** The lab's Docker (npm run bench runs this in test/lab/in-lab.sh, which imports the image), the parent, the plugin, the networks. */
async function setUp({ nodeArgs = [] } = {}) {
  if (!process.env.TSMV_ENGINE_ROOT)
    throw new Error('the docker bench drives only a lab engine of its own: run it with npm run bench');
  await removeLeftoverLinks();

  // The parent: one end of a veth pair, its peer up in a namespace of ours. Deleting the namespace deletes both.
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

  const stateDir = tempDir('tsmv-bench-docker-');
  const plugin = await startPlugin({ socket: SOCKET, stateDir, nodeArgs });
  onCleanup(() => plugin.stop());
  // Registered after the plugin: runs before it stops (Docker needs the plugin to remove its networks).
  onCleanup(() => removeDockerObjects(PREFIX));
  await removeDockerObjects(PREFIX); // leftovers of a crashed run

  const networks = {
    builtin: `${PREFIX}macvlan`,
    tsmacvlan: `${PREFIX}tsmacvlan`,
    tsmacvlanIpam: `${PREFIX}tsmacvlan-ipam`,
    tsmacvlanNoProbe: `${PREFIX}tsmacvlan-noprobe`,
    bridge: `${PREFIX}bridge`,
  };
  await docker([
    'network',
    'create',
    '-d',
    'macvlan',
    '-o',
    `parent=${parent}`,
    '--subnet',
    '10.235.1.0/24',
    networks.builtin,
  ]);
  await docker([
    'network',
    'create',
    '-d',
    DRIVER,
    '-o',
    `parent=${parent}`,
    '--subnet',
    '10.235.2.0/24',
    networks.tsmacvlan,
  ]);
  await docker([
    'network',
    'create',
    '-d',
    DRIVER,
    '--ipam-driver',
    DRIVER,
    '-o',
    `parent=${parent}`,
    '--subnet',
    '10.235.3.0/24',
    networks.tsmacvlanIpam,
  ]);
  await docker([
    'network',
    'create',
    '-d',
    DRIVER,
    '--ipam-driver',
    DRIVER,
    '--ipam-opt',
    'probe=off',
    '-o',
    `parent=${parent}`,
    '--subnet',
    '10.235.5.0/24',
    networks.tsmacvlanNoProbe,
  ]);
  await docker(['network', 'create', '-d', 'bridge', '--subnet', '10.235.4.0/24', networks.bridge]);
  return { parent, plugin, networks };
}

export async function benchDocker() {
  const pairs = envInt('BENCH_PAIRS', 60);
  const warmup = envInt('BENCH_DOCKER_WARMUP', 2);
  const { plugin, networks } = await setUp();
  const sleeper = `${PREFIX}sleeper`;
  // The container lives on the bridge network and visits the others; `--network none` could not be connected.
  await docker(['run', '-d', '--name', sleeper, '--network', networks.bridge, IMAGE, 'sleep', '3600']);

  const variants = ['builtin', 'tsmacvlan', 'tsmacvlanIpam', 'tsmacvlanNoProbe'];
  const samples = Object.fromEntries(
    variants.map((v) => [v, { connect: [], disconnect: [], connectDisconnect: [], run: [] }]),
  );
  const once = async (variant, keep) => {
    const c = await timed(DOCKER, ['network', 'connect', networks[variant], sleeper]);
    const d = await timed(DOCKER, ['network', 'disconnect', networks[variant], sleeper]);
    // Named, so that an interrupted run leaves nothing the clean-up cannot find by the prefix.
    const r = await timed(DOCKER, [
      'run',
      '--rm',
      '--name',
      `${PREFIX}run-${hex(4)}`,
      '--network',
      networks[variant],
      IMAGE,
      'true',
    ]);
    if (!keep) return;
    const s = samples[variant];
    s.connect.push(c.ms);
    s.disconnect.push(d.ms);
    s.connectDisconnect.push(c.ms + d.ms);
    s.run.push(r.ms);
  };
  log(
    `docker: ${warmup} warm-up + ${pairs} rounds × (built-in macvlan, tsmacvlan, tsmacvlan + IPAM, the same with probe=off), shuffled each round`,
  );
  for (let r = 0; r < warmup; r++) for (const v of shuffle(variants)) await once(v, false);
  const logFrom = plugin.logPosition();
  for (let r = 0; r < pairs; r++) {
    for (const v of shuffle(variants)) await once(v, true);
    if ((r + 1) % 10 === 0) log(`  docker: ${r + 1}/${pairs} rounds`);
  }

  const result = {
    rounds: pairs,
    warmupRounds: warmup,
    docker: await dockerOut(['version', '--format', '{{.Server.Version}}']),
  };
  for (const op of ['connect', 'disconnect', 'connectDisconnect', 'run']) {
    const f = Object.fromEntries(variants.map((v) => [v, summary(samples[v][op])]));
    f.ratio = {
      tsmacvlan: ratio(f.tsmacvlan.median, f.builtin.median),
      tsmacvlanIpam: ratio(f.tsmacvlanIpam.median, f.builtin.median),
    };
    f.ratioInterval95 = {
      tsmacvlan: ratioInterval(samples.tsmacvlan[op], samples.builtin[op]),
      tsmacvlanIpam: ratioInterval(samples.tsmacvlanIpam[op], samples.builtin[op]),
    };
    f.extraMs = {
      tsmacvlan: round(f.tsmacvlan.median - f.builtin.median),
      tsmacvlanIpam: round(f.tsmacvlanIpam.median - f.builtin.median),
    };
    // Per round, tsmacvlan's time over the built-in's of the same round: its median is less sensitive to slow spells.
    f.pairedRatioMedian = {
      tsmacvlan: round(median(samples.tsmacvlan[op].map((t, i) => t / samples.builtin[op][i]))),
      tsmacvlanIpam: round(median(samples.tsmacvlanIpam[op].map((t, i) => t / samples.builtin[op][i]))),
    };
    // Probe before use: the IPAM that probes against the same with --ipam-opt probe=off (the target is 1.05 at most).
    f.probing = {
      ratio: ratio(f.tsmacvlanIpam.median, f.tsmacvlanNoProbe.median),
      ratioInterval95: ratioInterval(samples.tsmacvlanIpam[op], samples.tsmacvlanNoProbe[op]),
      pairedRatioMedian: round(median(samples.tsmacvlanIpam[op].map((t, i) => t / samples.tsmacvlanNoProbe[op][i]))),
    };
    result[op] = f;
  }
  // What the plugin itself spent on each request during the measured rounds (from its own log lines).
  result.pluginMeasuredMsPerRequest = requestTimes(plugin.logLines(logFrom));
  result.pluginMemory = memoryOf(plugin.pid);
  return result;
}

async function inspect(name) {
  const [pid, ip] = (
    await dockerOut(['inspect', '-f', '{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name])
  ).split(' ');
  return { pid, ip };
}

async function iperf(server, client, seconds) {
  const srv = spawnTracked('nsenter', ['-t', server.pid, '-n', 'iperf3', '-s', '-1', '-p', '5201', '--forceflush'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`iperf3 server did not start: ${out}`)), 10_000);
    srv.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (out.includes('Server listening')) (clearTimeout(timer), resolve());
    });
    srv.once('exit', () => (clearTimeout(timer), reject(new Error(`iperf3 server exited: ${out}`))));
  });
  try {
    const { stdout } = await run(
      'nsenter',
      ['-t', client.pid, '-n', 'iperf3', '-c', server.ip, '-p', '5201', '-t', String(seconds), '-J'],
      { timeoutMs: (seconds + 30) * 1000 },
    );
    const json = JSON.parse(stdout);
    return { gbps: json.end.sum_received.bits_per_second / 1e9, retransmits: json.end.sum_sent.retransmits ?? 0 };
  } finally {
    const timer = setTimeout(() => srv.kill('SIGKILL'), 5_000);
    await srv.exited;
    clearTimeout(timer);
  }
}

async function ping(server, client, count) {
  const { stdout } = await run(
    'nsenter',
    ['-t', client.pid, '-n', 'ping', '-n', '-c', String(count), '-i', '0.01', '-W', '1', server.ip],
    { timeoutMs: 60_000 },
  );
  const rtts = [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (rtts.length < count) throw new Error(`ping ${server.ip}: ${rtts.length} of ${count} replies`);
  return rtts.slice(1); // the first one includes ARP
}

export async function benchDataPlane() {
  const rounds = envInt('BENCH_IPERF_ROUNDS', 3);
  const seconds = envInt('BENCH_IPERF_SECONDS', 5);
  const count = envInt('BENCH_PING_COUNT', 100);
  const { networks } = await setUp();
  const pairs = {};
  for (const [variant, network] of [
    ['tsmacvlan', networks.tsmacvlan],
    ['bridge', networks.bridge],
  ]) {
    const names = [`${PREFIX}dp-${variant}-1`, `${PREFIX}dp-${variant}-2`];
    for (const name of names) await docker(['run', '-d', '--name', name, '--network', network, IMAGE, 'sleep', '3600']);
    pairs[variant] = [await inspect(names[0]), await inspect(names[1])];
  }
  const samples = { tsmacvlan: { gbps: [], retransmits: [], rtt: [] }, bridge: { gbps: [], retransmits: [], rtt: [] } };
  log(`data plane: ${rounds} rounds × (tsmacvlan, bridge): iperf3 ${seconds} s + ${count} pings each`);
  for (let r = 0; r < rounds; r++) {
    for (const variant of shuffle(Object.keys(pairs))) {
      const [server, client] = pairs[variant];
      const t = await iperf(server, client, seconds);
      samples[variant].gbps.push(t.gbps);
      samples[variant].retransmits.push(t.retransmits);
      samples[variant].rtt.push(...(await ping(server, client, count)));
    }
  }
  const result = { rounds, iperfSeconds: seconds, pingsPerRound: count };
  for (const variant of Object.keys(samples)) {
    const s = samples[variant];
    result[variant] = {
      gbps: round(median(s.gbps), 2),
      gbpsEachRound: s.gbps.map((g) => round(g, 2)),
      retransmits: s.retransmits,
      rttMedianMs: round(median(s.rtt), 3),
      rttP99Ms: round(percentile(s.rtt, 99), 3),
      rttMeanMs: round(s.rtt.reduce((a, b) => a + b, 0) / s.rtt.length, 3),
    };
  }
  result.tsmacvlanOverBridge = {
    throughput: ratio(result.tsmacvlan.gbps, result.bridge.gbps),
    rtt: ratio(result.tsmacvlan.rttMedianMs, result.bridge.rttMedianMs),
  };
  return result;
}
