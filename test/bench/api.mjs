// The plugin's own work through its HTTP API, each plugin in a private network namespace (a "cell": `unshare --net`,
// a veth pair whose end `bpar` is the parent; every link dies with the namespace), driven over its unix socket as
// Docker would drive it. Next to each plugin, in the same namespace, a floor worker (floor-worker.mjs) does the same
// kernel work directly. Measures:
//   life      a full endpoint life (RequestAddress, CreateEndpoint, Join, Leave, DeleteEndpoint, ReleaseAddress) vs the
//             floors `kernel` and `kernel+disk`, interleaved in random order each round
//   scale     the same with 10, 1,000 and 4,000 endpoints present (one cell each, all interleaved): created and joined
//             through the API one at a time, as Docker starts containers, and left as links in the cell (harsher on the
//             kernel than Docker, which moves them into containers; the same for the plugin's state); peak RSS at each.
//             Plus the 10-endpoint case with the state on /dev/shm (fsync free): the plugin's cost without the disk's
//   burst     200 endpoints created and joined at once, then torn down at once, vs the kernel doing the same: on a
//             network with probe=off (the floor probes nothing), and once with probing on
//             Then one more burst in a cell of its own under --cpu-prof and with metrics on: the plugin's CPU per
//             endpoint during the burst's creates, and the state's syncs (count, seconds) per endpoint created and deleted
//   profile   a separate cell under --cpu-prof, only lives: where the plugin's CPU goes per life
import { copyFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { summarizeProfile } from './profile.mjs';
import {
  HERE,
  PluginClient,
  cpuMsOf,
  envInt,
  hex,
  log,
  memoryOf,
  median,
  onCleanup,
  ratio,
  ratioInterval,
  requestTimes,
  round,
  shuffle,
  spawnTracked,
  startPlugin,
  summary,
  tempDir,
} from './lib.mjs';

const PARENT = 'bpar';
// The plugin runs in a namespace of its own with a parent there; `exec` keeps its pid (unshare and bash do not fork).
export const CELL_WRAP = [
  'unshare',
  '--net',
  '--',
  'bash',
  '-c',
  `ip link set lo up && ip link add ${PARENT} type veth peer name ${PARENT}p && ip link set ${PARENT}p up && ip link set ${PARENT} up && exec "$@"`,
  'tsmv-bench-cell',
];

const EP_OPTIONS = { 'com.docker.network.endpoint.exposedports': [], 'com.docker.network.portmap': [] };

function startWorker(pid) {
  const child = spawnTracked('nsenter', ['-t', String(pid), '-n', process.execPath, join(HERE, 'floor-worker.mjs')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let seq = 0;
  const pending = new Map();
  child.on('message', (msg) => {
    const waiter = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error) waiter?.reject(new Error(`floor worker: ${msg.error}`));
    else waiter?.resolve(msg.result);
  });
  child.on('error', (err) => log(`floor worker: ${err.message}`));
  child.on('exit', () => {
    for (const waiter of pending.values()) waiter.reject(new Error('floor worker exited'));
    pending.clear();
  });
  return {
    child,
    call(cmd, args = {}) {
      const id = ++seq;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, cmd, ...args });
      });
    },
    async exit() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await this.call('exit').catch(() => undefined);
      await child.exited;
    },
  };
}

/** A MAC unique in the cell: 02:42 and a 32-bit counter (the floor worker uses 02:43). */
const macOf = (n) => `02:42:${[24, 16, 8, 0].map((s) => ((n >>> s) & 255).toString(16).padStart(2, '0')).join(':')}`;

/**
 * A cell: a plugin in its own namespace, its network (made the way Docker makes one), and a floor worker beside it.
 * `plugin` overrides how the plugin is started (startPlugin's node, cli, startTimeoutMs: test/bench/arm64.mjs).
 */
export async function makeCell(
  name,
  {
    subnet,
    nodeArgs = [],
    records = 0,
    root,
    variants = ['api', 'kernel', 'kernel+disk'],
    plugin: how = {},
    poolOptions = {},
  },
) {
  const dir = tempDir(`tsmv-bench-${name}-`, root);
  const plugin = await startPlugin({
    socket: join(dir, 'plugin.sock'),
    stateDir: dir,
    wrap: CELL_WRAP,
    nodeArgs,
    ...how,
  });
  onCleanup(() => plugin.stop());
  const worker = startWorker(plugin.pid);
  onCleanup(() => worker.exit());
  await worker.call('init', { parent: PARENT, dir: join(dir, 'floor'), records });
  const client = new PluginClient(plugin.socket);
  onCleanup(() => client.close());

  const pool = await client.ok('IpamDriver.RequestPool', {
    AddressSpace: 'local',
    Pool: subnet,
    SubPool: '',
    Options: poolOptions,
    V6: false,
  });
  const gateway = await client.ok('IpamDriver.RequestAddress', {
    PoolID: pool.PoolID,
    Address: '',
    Options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  const networkId = hex(32);
  await client.ok('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { parent: PARENT } },
    IPv4Data: [{ AddressSpace: 'local', Gateway: gateway.Address, Pool: subnet }],
    IPv6Data: [],
  });

  let counter = 0;
  const cell = {
    name,
    dir,
    variants,
    plugin,
    worker,
    client,
    poolId: pool.PoolID,
    networkId,
    /** RequestAddress, CreateEndpoint, Join: a container attached. Per-step times in `steps` when given. */
    async attach(steps) {
      const mac = macOf(counter++);
      const endpointId = hex(32);
      let t = performance.now();
      const lap = (step) => {
        const now = performance.now();
        if (steps) steps[step] = now - t;
        t = now;
      };
      const { Address } = await client.ok('IpamDriver.RequestAddress', {
        PoolID: pool.PoolID,
        Address: '',
        Options: { 'com.docker.network.endpoint.macaddress': mac },
      });
      lap('RequestAddress');
      await client.ok('NetworkDriver.CreateEndpoint', {
        NetworkID: networkId,
        EndpointID: endpointId,
        Interface: { Address, AddressIPv6: '', MacAddress: mac },
        Options: {
          ...EP_OPTIONS,
          'com.docker.network.endpoint.macaddress': Buffer.from(mac.split(':').map((b) => parseInt(b, 16))).toString(
            'base64',
          ),
        },
      });
      lap('CreateEndpoint');
      await client.ok('NetworkDriver.Join', {
        NetworkID: networkId,
        EndpointID: endpointId,
        SandboxKey: `/var/run/docker/netns/${hex(6)}`,
        Options: EP_OPTIONS,
      });
      lap('Join');
      return { endpointId, address: Address };
    },
    /** Leave, DeleteEndpoint, ReleaseAddress: the container gone. */
    async detach({ endpointId, address }, steps) {
      let t = performance.now();
      const lap = (step) => {
        const now = performance.now();
        if (steps) steps[step] = now - t;
        t = now;
      };
      await client.ok('NetworkDriver.Leave', { NetworkID: networkId, EndpointID: endpointId });
      lap('Leave');
      await client.ok('NetworkDriver.DeleteEndpoint', { NetworkID: networkId, EndpointID: endpointId });
      lap('DeleteEndpoint');
      await client.ok('IpamDriver.ReleaseAddress', { PoolID: pool.PoolID, Address: address.split('/')[0] });
      lap('ReleaseAddress');
    },
    async life() {
      const steps = {};
      const t0 = performance.now();
      const endpoint = await cell.attach(steps);
      await cell.detach(endpoint, steps);
      return { ms: performance.now() - t0, steps };
    },
    /** `n` endpoints attached, `concurrency` at a time. */
    async populate(n, concurrency = 32) {
      const made = [];
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: Math.min(concurrency, n) }, async () => {
          while (next < n) {
            next++;
            made.push(await cell.attach());
          }
        }),
      );
      return { endpoints: made, ms: performance.now() - t0 };
    },
  };
  return cell;
}

function stepMedians(list) {
  const out = {};
  for (const key of Object.keys(list[0] ?? {})) out[key] = round(median(list.map((s) => s[key])));
  return out;
}

/** Lives in every cell, all variants, in a fresh random order each round. */
export async function lives(cells, rounds, warmup) {
  const kinds = cells.flatMap((cell) => cell.variants.map((variant) => ({ cell, variant })));
  const samples = new Map(kinds.map((k) => [k, { ms: [], steps: [], cpuMs: [] }]));
  const once = async ({ cell, variant }) => {
    if (variant !== 'api') return cell.worker.call('life', { variant });
    // The plugin's CPU time (all its threads, user + kernel) across the life; it is otherwise idle.
    const cpu = cpuMsOf(cell.plugin.pid);
    const res = await cell.life();
    res.cpuMs = cpuMsOf(cell.plugin.pid) - cpu;
    return res;
  };
  for (let r = 0; r < warmup; r++) for (const kind of shuffle(kinds)) await once(kind);
  const cpu0 = new Map(cells.map((c) => [c, cpuMsOf(c.plugin.pid)]));
  const logFrom = new Map(cells.map((c) => [c, c.plugin.logPosition()]));
  for (let r = 0; r < rounds; r++) {
    for (const kind of shuffle(kinds)) {
      const res = await once(kind);
      const s = samples.get(kind);
      s.ms.push(res.ms);
      s.steps.push(res.steps);
      if (res.cpuMs !== undefined) s.cpuMs.push(res.cpuMs);
    }
    if ((r + 1) % 50 === 0) log(`  lives: ${r + 1}/${rounds} rounds`);
  }
  const out = {};
  for (const cell of cells) {
    const get = (variant) => samples.get(kinds.find((k) => k.cell === cell && k.variant === variant));
    const api = get('api');
    const entry = {
      api: summary(api.ms),
      apiStepsMedianMs: stepMedians(api.steps),
      // CPU time, all threads, user + kernel (the kernel's netlink work runs in the sender's system calls).
      cpuMsPerLife: { api: round(median(api.cpuMs)) },
      // Per round: adds what other links in the namespace cost the plugin (it parses every rtnetlink link event).
      pluginCpuMsPerRound: round((cpuMsOf(cell.plugin.pid) - cpu0.get(cell)) / rounds),
      pluginMeasuredMsPerRequest: requestTimes(cell.plugin.logLines(logFrom.get(cell))),
    };
    for (const [variant, key] of [
      ['kernel', 'kernel'],
      ['kernel+disk', 'kernelDisk'],
    ]) {
      if (!cell.variants.includes(variant)) continue;
      const floor = get(variant);
      entry[key] = summary(floor.ms);
      entry[`${key}StepsMedianMs`] = stepMedians(floor.steps);
      entry.cpuMsPerLife[key] = round(median(floor.cpuMs));
      const name = `apiOver${key[0].toUpperCase()}${key.slice(1)}`;
      entry[name] = {
        median: ratio(entry.api.median, entry[key].median),
        interval95: ratioInterval(api.ms, floor.ms),
        p99: ratio(entry.api.p99, entry[key].p99),
      };
    }
    Object.defineProperty(entry, 'samples', { value: api.ms, enumerable: false }); // for intervals across cells
    out[cell.name] = entry;
  }
  return out;
}

/** `n` endpoints attached at once through the API, then detached at once; the kernel doing the same, interleaved. */
/** `n` endpoints attached at once through `cell`'s plugin, then detached at once, into `into`; waits for the links to go. */
async function apiBurst(cell, n, into) {
  const present = (await cell.worker.call('count')).pluginEndpointLinks; // the cell's own endpoints
  let t0 = performance.now();
  const made = await Promise.allSettled(Array.from({ length: n }, () => cell.attach()));
  into.create.push(performance.now() - t0);
  const ok = made.filter((m) => m.status === 'fulfilled').map((m) => m.value);
  into.failed += made.length - ok.length;
  if (made.length !== ok.length) into.firstError ??= made.find((m) => m.status === 'rejected').reason.message;
  if (new Set(ok.map((e) => e.address)).size !== ok.length) into.distinctAddresses = false;
  t0 = performance.now();
  const gone = await Promise.allSettled(ok.map((e) => cell.detach(e)));
  into.teardown.push(performance.now() - t0);
  into.failed += gone.filter((g) => g.status === 'rejected').length;
  // The plugin answers DeleteEndpoint before the kernel's delete is done (a worker thread finishes it): wait for
  // the links to be gone, and time that too.
  let left = (await cell.worker.call('count')).pluginEndpointLinks - present;
  while (left > 0 && performance.now() - t0 < 60_000) {
    await new Promise((r) => setTimeout(r, 20));
    left = (await cell.worker.call('count')).pluginEndpointLinks - present;
  }
  into.linksGone.push(performance.now() - t0);
  into.leftLinks = Math.max(into.leftLinks, left);
}

/**
 * `n` endpoints attached at once through the API, then detached at once; the kernel doing the same, interleaved. With
 * `baseCell` (a cell running another build, BENCH_BASE_CLI), that build's bursts too, in the same shuffled rounds.
 */
async function bursts(cell, n, reps, baseCell) {
  const fresh = () => ({ create: [], teardown: [], linksGone: [], failed: 0, distinctAddresses: true, leftLinks: 0 });
  const api = fresh();
  const base = fresh();
  const kernel = { create: [], teardown: [], failed: 0 };
  const order = []; // each burst in turn: its variant and create time, to see what a burst after another costs
  for (let r = 0; r < reps; r++) {
    for (const variant of shuffle(['api', 'kernel', ...(baseCell ? ['base'] : [])])) {
      order.push(variant);
      if (variant === 'api') await apiBurst(cell, n, api);
      else if (variant === 'base') await apiBurst(baseCell, n, base);
      else {
        const made = await cell.worker.call('burst', { phase: 'create', n });
        kernel.create.push(made.ms);
        const gone = await cell.worker.call('burst', { phase: 'delete', n });
        kernel.teardown.push(gone.ms);
        kernel.failed += made.failed + gone.failed;
        if (made.firstError) kernel.firstError ??= made.firstError;
      }
    }
  }
  const m = (list) => round(median(list));
  const created = { api: [...api.create], base: [...base.create], kernel: [...kernel.create] };
  const sequence = order.map((variant) => `${variant} ${Math.round(created[variant].shift())} ms`);
  const figures = (a) => ({
    createMs: m(a.create),
    teardownMs: m(a.teardown),
    linksGoneMs: m(a.linksGone),
    failed: a.failed,
    distinctAddresses: a.distinctAddresses,
    endpointLinksLeftAfterTeardown: a.leftLinks,
    ...(a.firstError && { firstError: a.firstError }),
  });
  return {
    endpoints: n,
    repetitions: reps,
    sequence,
    api: figures(api),
    kernel: {
      createMs: m(kernel.create),
      teardownMs: m(kernel.teardown),
      failed: kernel.failed,
      ...(kernel.firstError && { firstError: kernel.firstError }),
    },
    createApiOverKernel: ratio(m(api.create), m(kernel.create)),
    teardownApiOverKernel: ratio(m(api.teardown), m(kernel.teardown)),
    ...(baseCell && {
      base: { cli: process.env.BENCH_BASE_CLI, ...figures(base) },
      createBaseOverKernel: ratio(m(base.create), m(kernel.create)),
      createApiOverBase: ratio(m(api.create), m(base.create)),
      teardownApiOverBase: ratio(m(api.teardown), m(base.teardown)),
    }),
  };
}

export async function benchApi() {
  const rounds = envInt('BENCH_LIVES', 200);
  const warmup = envInt('BENCH_WARMUP_LIVES', 20);
  const scales = (process.env.BENCH_SCALES ?? '10,1000,4000').split(',').map(Number);
  const burstSize = envInt('BENCH_BURST', 200);
  const burstReps = envInt('BENCH_BURSTS', 3);
  const profileLives = envInt('BENCH_PROFILE_LIVES', 300);
  const populateConcurrency = Math.max(1, envInt('BENCH_POPULATE_CONCURRENCY', 1));
  const result = { rounds, warmupRounds: warmup, scales, stateDirFs: process.env.BENCH_STATE_DIR || 'os temp dir' };

  // One cell per scale, each network in its own subnet of 10.235.0.0/16 (IPAM state only: no address is configured).
  const subnets = ['10.235.16.0/20', '10.235.32.0/19', '10.235.64.0/18', '10.235.128.0/17'];
  const cells = [];
  for (const [i, scale] of scales.entries()) {
    if (i >= subnets.length) throw new Error('at most 4 scales');
    const cell = await makeCell(`n${scale}`, { subnet: subnets[i], records: scale });
    // One at a time by default, as Docker starts containers: the memory is then the state's, not a burst's (see burst).
    const made = await cell.populate(scale, populateConcurrency);
    cell.present = made.endpoints;
    log(
      `cell ${cell.name}: ${scale} endpoints created and joined in ${Math.round(made.ms)} ms, ${populateConcurrency} at a time`,
    );
    result[`populate_${scale}`] = {
      ms: round(made.ms, 0),
      perEndpointMs: round(made.ms / Math.max(1, scale)),
      concurrency: populateConcurrency,
      pluginMemory: memoryOf(cell.plugin.pid),
    };
    cells.push(cell);
  }

  // The smallest case again with the state on a tmpfs, where fsync costs nothing: the plugin's cost without the disk's.
  let tmpfs;
  if (envInt('BENCH_TMPFS', 1) && existsSync('/dev/shm')) {
    tmpfs = await makeCell(`n${scales[0]}-tmpfs`, { subnet: '10.235.12.0/22', root: '/dev/shm', variants: ['api'] });
    await tmpfs.populate(scales[0]);
  }
  const measured = tmpfs ? [...cells, tmpfs] : cells;
  log(
    `lives: ${rounds} rounds × ${measured.map((c) => `${c.name} (${c.variants.join(', ')})`).join(', ')}, interleaved`,
  );
  result.life = await lives(measured, rounds, warmup);
  if (tmpfs) {
    const t = result.life[tmpfs.name];
    const base = result.life[cells[0].name];
    t.apiOverKernel = {
      median: ratio(t.api.median, base.kernel.median),
      p99: ratio(t.api.p99, base.kernel.p99),
      note: `kernel floor of cell ${cells[0].name}`,
    };
    t.pluginMemory = memoryOf(tmpfs.plugin.pid);
    await tmpfs.worker.exit();
    await tmpfs.plugin.stop();
  }
  for (const cell of cells) result.life[cell.name].pluginMemory = memoryOf(cell.plugin.pid);
  const small = cells[0];
  const large = cells[cells.length - 1];
  result.scale = {
    endpointsSmall: scales[0],
    endpointsLarge: scales[scales.length - 1],
    apiLargeOverSmall: {
      median: ratio(result.life[large.name].api.median, result.life[small.name].api.median),
      interval95: ratioInterval(result.life[large.name].samples, result.life[small.name].samples),
      p99: ratio(result.life[large.name].api.p99, result.life[small.name].api.p99),
    },
    kernelLargeOverSmall: {
      median: ratio(result.life[large.name].kernel.median, result.life[small.name].kernel.median),
    },
    pluginPeakRssMiB: Object.fromEntries(cells.map((c) => [c.name, memoryOf(c.plugin.pid).peakRssMiB])),
    stateBytesOnDisk: Object.fromEntries(cells.map((c) => [c.name, dirBytes(join(c.dir, 'state'))])),
  };

  // The kernel floor asks nothing of the LAN, so the burst against it runs on a network with probe=off: the plugin's
  // own cost. With probing (the default) each address waits for its probe (0.4 s, 32 probed at a time): measured
  // once beside it, against the same floor.
  log(`burst: ${burstSize} endpoints at once, ${burstReps} repetitions, vs the kernel (probe=off)`);
  const burstCell = await makeCell('burst', { subnet: '10.235.4.0/22', poolOptions: { probe: 'off' } });
  const before = memoryOf(burstCell.plugin.pid);
  // The previous build beside it, when given: its bursts in the same rounds (BENCH_BASE_CLI, as the memory section).
  const baseCell =
    process.env.BENCH_BASE_CLI &&
    (await makeCell('burst-base', {
      subnet: '10.235.0.0/22',
      poolOptions: { probe: 'off' },
      plugin: { cli: process.env.BENCH_BASE_CLI },
      variants: ['api'],
    }));
  result.burst = await bursts(burstCell, burstSize, burstReps, baseCell);
  if (baseCell) {
    await baseCell.worker.exit();
    await baseCell.plugin.stop();
  }
  result.burst.probe = 'off';
  result.burst.pluginMemoryBefore = before;
  result.burst.pluginMemoryAfter = memoryOf(burstCell.plugin.pid);
  await burstCell.worker.exit();
  await burstCell.plugin.stop();
  if (envInt('BENCH_BURST_PROFILE', 1)) {
    log(`burst: ${burstSize} endpoints at once in a cell under --cpu-prof, with metrics: where a burst's time goes`);
    result.burstProfile = await burstProfile(burstSize);
  }
  log(`burst: ${burstSize} endpoints at once, once, probing on, vs the kernel`);
  result.burstProbed = await bursts(small, burstSize, 1);

  // Free the cells before profiling: their namespaces (and thousands of links) go.
  for (const cell of cells) {
    await cell.worker.exit();
    await cell.plugin.stop();
  }

  if (profileLives > 0) {
    log(`profile: ${profileLives} lives in a cell under --cpu-prof`);
    const profDir = tempDir('tsmv-bench-prof-');
    const cell = await makeCell('prof', {
      subnet: '10.235.8.0/22',
      nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir],
    });
    for (let i = 0; i < 20; i++) await cell.life();
    const times = [];
    const fromUs = Number(process.hrtime.bigint() / 1000n);
    for (let i = 0; i < profileLives; i++) times.push((await cell.life()).ms);
    const toUs = Number(process.hrtime.bigint() / 1000n);
    await cell.worker.exit();
    await cell.plugin.stop();
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (file) {
      result.profile = {
        livesProfiled: profileLives,
        window: { fromUs, toUs },
        lifeMsUnderProfiler: summary(times),
        ...summarizeProfile(join(profDir, file), profileLives, { fromUs, toUs }),
      };
      if (process.env.BENCH_KEEP_PROFILE) {
        result.profile.kept = join(process.env.BENCH_KEEP_PROFILE, `plugin-lives-${Date.now()}.cpuprofile`);
        copyFileSync(join(profDir, file), result.profile.kept);
      }
    } else {
      result.profile = { error: 'no .cpuprofile was written' };
    }
  }
  return result;
}

/**
 * One burst of `n` (probe=off) in a cell under --cpu-prof, after one unmeasured burst to warm it: the profile of the
 * creates (RequestAddress, CreateEndpoint, Join of all n at once), and the state's syncs per endpoint from the
 * plugin's metrics (tsmacvlan_state_fsync_duration_seconds) across the creates and across the teardown.
 */
async function burstProfile(n) {
  const profDir = tempDir('tsmv-bench-burst-prof-');
  const metricsAddress = '127.0.0.1:9464'; // the cell's own loopback
  const cell = await makeCell('burst-prof', {
    subnet: '10.235.0.0/22',
    poolOptions: { probe: 'off' },
    nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir],
    plugin: { args: ['--metrics-address', metricsAddress] },
    variants: ['api'],
  });
  const metrics = () => cell.worker.call('metrics', { address: metricsAddress });
  const once = async () => {
    const made = await Promise.all(Array.from({ length: n }, () => cell.attach()));
    await Promise.all(made.map((e) => cell.detach(e)));
  };
  await once();
  const m0 = await metrics();
  const logFrom = cell.plugin.logPosition();
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const t0 = performance.now();
  const made = await Promise.all(Array.from({ length: n }, () => cell.attach()));
  const createMs = performance.now() - t0;
  const toUs = Number(process.hrtime.bigint() / 1000n);
  const m1 = await metrics();
  await Promise.all(made.map((e) => cell.detach(e)));
  const m2 = await metrics();
  const requests = requestTimes(cell.plugin.logLines(logFrom));
  await cell.worker.exit();
  await cell.plugin.stop();
  const per = (value) => round(value / n, 3);
  const out = {
    endpoints: n,
    createMsUnderProfiler: round(createMs),
    syncsPerEndpoint: { create: per(m1.fsyncs - m0.fsyncs), teardown: per(m2.fsyncs - m1.fsyncs) },
    syncMsPerEndpoint: {
      create: per((m1.fsyncSeconds - m0.fsyncSeconds) * 1000),
      teardown: per((m2.fsyncSeconds - m1.fsyncSeconds) * 1000),
    },
    pluginMeasuredMsPerRequest: requests,
  };
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return { ...out, error: 'no .cpuprofile was written' };
  if (process.env.BENCH_KEEP_PROFILE) {
    out.kept = join(process.env.BENCH_KEEP_PROFILE, `plugin-burst-${Date.now()}.cpuprofile`);
    copyFileSync(join(profDir, file), out.kept);
  }
  return { ...out, ...summarizeProfile(join(profDir, file), n, { fromUs, toUs }) };
}

function dirBytes(dir) {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(path) : statSync(path).size;
  }
  return total;
}
