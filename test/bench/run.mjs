// `npm run bench`: builds, then runs every benchmark of the plugin and prints one table; the figures go to
// BENCH_OUT (default test-results/bench.json). Needs root (namespaces, links, Docker). Not part of `npm test`.
//
//   api       endpoint life through the HTTP API vs the kernel floor; scale (10 / 1,000 / 4,000 endpoints, peak RSS);
//             burst of 200; CPU profile per life                                          (private network namespaces)
//   docker    docker network connect+disconnect and docker run --rm: tsmacvlan vs Docker's built-in macvlan
//   dataplane iperf3 and ping between two containers: tsmacvlan (macvlan bridge mode) vs a Docker bridge network
//   cluster   test/bench/cluster.mjs: allocation latency, local journal vs 3-member etcd; 20 plugin instances at once;
//             test/bench/cluster-docker.ts on a lab host: API latency and docker run, local vs cluster IPAM
//   dhcp      test/bench/dhcp.mjs: 20 containers at once on a DHCP network (dnsmasq) vs with the plugin's IPAM; a
//             lease's time on the wire: the server's turnaround beside the plugin's own
//   metrics   test/bench/metrics.mjs: docker network connect+disconnect with metrics on (scraped every 1 s) ÷ off
//   ipam      test/bench/ipam-fill.mjs (a /16 filled through the API)
//   memory    test/bench/memory.mjs: idle RSS, peak RSS with 4,000 endpoints, a restart's first answer; this build
//             beside BENCH_BASE_CLI (another build's dist/cli/main.js) when given
//   arm64     test/bench/arm64.mjs: the arm64 plugin under qemu beside the amd64 one: start to socket, endpoint life
//
// Every figure is a median over repetitions of the variants interleaved in a fresh random order each round, and every
// ratio compares figures measured in the same run. Knobs (environment):
//   BENCH_ONLY=api,docker,dataplane,cluster,dhcp,metrics,ipam,memory,arm64   sections to run (default all)
//   BENCH_PAIRS=60          docker rounds (each: every network variant, shuffled)
//   BENCH_LIVES=200         endpoint-life rounds (each: every cell × api/kernel/kernel+disk, shuffled)
//   BENCH_SCALES=10,1000,4000   endpoints present in each cell
//   BENCH_POPULATE_CONCURRENCY=1    how many of them are created at a time (1: as Docker starts containers)
//   BENCH_BURST=200  BENCH_BURSTS=3      burst size and repetitions
//   BENCH_PROFILE_LIVES=300 lives profiled with --cpu-prof (0: no profile); BENCH_KEEP_PROFILE=<dir> keeps the file
//   BENCH_DHCP_ROUNDS=5     rounds of 20 containers at once (each: DHCP and IPAM, shuffled)
//   BENCH_METRICS_ROUNDS=60 rounds of connect+disconnect (each: metrics off and on, shuffled)
//   BENCH_IPERF_ROUNDS=3  BENCH_IPERF_SECONDS=5  BENCH_PING_COUNT=100
//   BENCH_MEMORY_ROUNDS=2  BENCH_MEMORY_ENDPOINTS=4000   BENCH_BASE_CLI=<dist/cli/main.js of the build to compare>
//   BENCH_BASE_NODE_ARGS="--max-semi-space-size=1"   the node flags that build shipped with (default: this one's)
//   BENCH_MEMORY_FLAGS="--optimize-for-size,--max-semi-space-size=2"   node flags weighed as variants of their own in
//             the memory section (sets separated by commas)   BENCH_RESTARTS=5   restarts of each variant
//   BENCH_RESTART_PROF=<dir>   a CPU profile of each restart in the memory section; BENCH_RESTART_HEAP=<dir> a heap
//             snapshot of each restarted plugin, after its figures
//   BENCH_STATE_DIR=<dir>   where the plugins keep state (default: the OS temp dir, i.e. the real disk)
//   BENCH_TMPFS=1           also measure the life with the state on /dev/shm (fsync free), interleaved (0: not)
//   BENCH_OUT=<file>        the JSON (default test-results/bench.json)
//   BENCH_QUICK=1           small counts everywhere, no ipam section (a smoke run of the bench itself, ~1 min)
import { mkdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT, cleanupAll, interrupt, log, markdown, ratio, round, run, table, tempDir } from './lib.mjs';

// The bench makes links and namespaces, removes what a crashed run left by name (tsbench*) and drives Docker: only in
// the lab npm run bench starts it in (test/lab/in-lab.sh), never on the host, where those names may be anyone's.
const labNetns = process.env.TSMV_LAB_NETNS;
if (!labNetns || readlinkSync('/proc/self/ns/net') !== `net:[${statSync(`/run/netns/${labNetns}`).ino}]`) {
  console.error(
    'the bench runs only in a lab of its own: npm run bench (it runs test/bench/run.mjs in test/lab/in-lab.sh)',
  );
  process.exit(2);
}

if (process.env.BENCH_QUICK) {
  const quick = {
    BENCH_PAIRS: '5',
    BENCH_LIVES: '30',
    BENCH_WARMUP_LIVES: '5',
    BENCH_SCALES: '10,200,400',
    BENCH_BURST: '50',
    BENCH_BURSTS: '1',
    BENCH_PROFILE_LIVES: '50',
    BENCH_IPERF_ROUNDS: '1',
    BENCH_IPERF_SECONDS: '2',
    BENCH_PING_COUNT: '20',
    BENCH_METRICS_ROUNDS: '5',
    BENCH_ONLY: 'api,docker,dataplane',
  };
  for (const [key, value] of Object.entries(quick)) process.env[key] ??= value;
}

const only = new Set(
  (process.env.BENCH_ONLY ?? 'api,docker,dataplane,cluster,dhcp,metrics,ipam,memory,arm64')
    .split(',')
    .map((s) => s.trim()),
);
const outPath = process.env.BENCH_OUT || join(ROOT, 'test-results/bench.json');

if (process.getuid?.() !== 0) {
  console.error('npm run bench needs root: it creates network namespaces and links and drives Docker');
  process.exit(1);
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    interrupt();
    log(`${signal}: cleaning up`);
    cleanupAll().finally(() => process.exit(130));
  });
}

const results = { startedAt: new Date().toISOString(), node: process.version, kernel: '', sections: [...only] };
const failures = [];

async function section(name, fn) {
  if (!only.has(name)) return;
  log(`== ${name}`);
  const t0 = performance.now();
  try {
    results[name] = await fn();
  } catch (err) {
    failures.push(`${name}: ${err.stack ?? err.message}`);
    results[name] = { error: err.message };
    log(`${name} FAILED: ${err.stack ?? err.message}`);
  } finally {
    await cleanupAll();
  }
  results[name] ??= {};
  results[name].sectionSeconds = round((performance.now() - t0) / 1000, 1);
}

results.kernel = (await run('uname', ['-r'])).stdout.trim();
const t0 = performance.now();
await section('api', async () => (await import('./api.mjs')).benchApi());
await section('docker', async () => (await import('./docker.mjs')).benchDocker());
await section('dataplane', async () => (await import('./docker.mjs')).benchDataPlane());
await section('cluster', async () => (await import('./cluster.mjs')).benchCluster());
await section('dhcp', async () => (await import('./dhcp.mjs')).benchDhcp());
await section('metrics', async () => (await import('./metrics.mjs')).benchMetrics());
await section('ipam', async () => {
  const out = join(tempDir('tsmv-bench-ipam-out-'), 'ipam.json');
  const { readFileSync } = await import('node:fs');
  await run(process.execPath, [join(ROOT, 'test/bench/ipam-fill.mjs')], {
    timeoutMs: 15 * 60_000,
    env: { ...process.env, BENCH_OUT: out },
  });
  return JSON.parse(readFileSync(out, 'utf8'));
});
await section('memory', async () => (await import('./memory.mjs')).benchMemory());
await section('arm64', async () => (await import('./arm64.mjs')).benchArm64());
results.totalSeconds = round((performance.now() - t0) / 1000, 1);

const { rows, readme } = report(results);
results.table = rows.map(([figure, value, target, verdict]) => ({ figure, value, target, verdict }));
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, `${JSON.stringify(results, null, 2)}\n`);

console.log();
console.log(table(['figure', 'value', 'target', ''], rows));
console.log();
console.log(readme);
console.log();
console.log(`figures: ${outPath}; ${Math.round(results.totalSeconds)} s`);
if (failures.length) {
  console.log(`\n${failures.length} section(s) failed:\n${failures.join('\n')}`);
  process.exitCode = 1;
}

/** The table rows (figure, value, target, met?) and the README's performance table. */
function report(r) {
  const rows = [];
  const readmeRows = [];
  const ms = (v) => (v === null || v === undefined ? '—' : `${(+v).toFixed(1)} ms`);
  const x = (v) => (v === null || v === undefined ? '—' : `${(+v).toFixed(2)}×`);
  const verdict = (value, max) => (value === null || value === undefined ? '' : value <= max ? 'met' : 'MISSED');
  const add = (figure, value, target = '', met = '') => rows.push([figure, value, target, met]);
  const readme = (operation, baseline, value, r2) => readmeRows.push([operation, baseline, value, r2 ?? '']);

  const d = r.docker;
  if (d && !d.error) {
    const ci = (v) => (v ? ` [${v[0].toFixed(2)}–${v[1].toFixed(2)}]` : '');
    for (const op of ['connect', 'disconnect', 'connectDisconnect', 'run']) {
      const label = {
        connect: 'docker network connect',
        disconnect: 'docker network disconnect',
        connectDisconnect: 'docker network connect + disconnect',
        run: 'docker run --rm (busybox true)',
      }[op];
      const f = d[op];
      const target = op === 'connectDisconnect' || op === 'run';
      add(
        `${label}: built-in macvlan / tsmacvlan / + its IPAM`,
        `${ms(f.builtin.median)} / ${ms(f.tsmacvlan.median)} / ${ms(f.tsmacvlanIpam.median)}`,
      );
      add(
        `${label}: tsmacvlan ÷ built-in [95% CI]`,
        `${x(f.ratio.tsmacvlan)}${ci(f.ratioInterval95?.tsmacvlan)}`,
        target ? '≤ 1.05' : '',
        target ? verdict(f.ratio.tsmacvlan, 1.05) : '',
      );
      add(
        `${label}: tsmacvlan + its IPAM ÷ built-in [95% CI]`,
        `${x(f.ratio.tsmacvlanIpam)}${ci(f.ratioInterval95?.tsmacvlanIpam)}`,
        target ? '≤ 1.05' : '',
        target ? verdict(f.ratio.tsmacvlanIpam, 1.05) : '',
      );
      if (f.probing)
        add(
          `${label}: its IPAM probing ÷ with probe=off [95% CI]`,
          `${x(f.probing.ratio)}${ci(f.probing.ratioInterval95)}`,
          target ? '≤ 1.05' : '',
          target ? verdict(f.probing.ratio, 1.05) : '',
        );
      if (!target) continue;
      readme(label, `built-in macvlan: ${ms(f.builtin.median)}`, ms(f.tsmacvlan.median), x(f.ratio.tsmacvlan));
      readme(
        `${label}, with \`--ipam-driver tsmacvlan\``,
        `built-in macvlan: ${ms(f.builtin.median)}`,
        ms(f.tsmacvlanIpam.median),
        x(f.ratio.tsmacvlanIpam),
      );
    }
  }
  const m = r.metrics;
  if (m && !m.error) {
    const ci = m.onOverOffInterval95
      ? ` [${m.onOverOffInterval95[0].toFixed(2)}–${m.onOverOffInterval95[1].toFixed(2)}]`
      : '';
    add(
      'docker network connect + disconnect: metrics off / on (scraped every 1 s)',
      `${ms(m.connectDisconnect.off.median)} / ${ms(m.connectDisconnect.on.median)}`,
    );
    add('the same: metrics on ÷ off [95% CI]', `${x(m.onOverOff)}${ci}`, '≤ 1.02', verdict(m.onOverOff, 1.02));
    add(
      "the plugin's own time per connect+disconnect (its requests' medians): off / on; on ÷ off",
      `${ms(m.pluginOwnMs.off.perCycleMs)} / ${ms(m.pluginOwnMs.on.perCycleMs)}; ${x(m.pluginOwnOnOverOff)}`,
    );
    add('scrape of /metrics (median / p99)', `${ms(m.scrapes.median)} / ${ms(m.scrapes.p99)}`);
    add(
      'plugin RSS after the rounds: metrics off / on',
      `${m.pluginMemory.off.rssMiB} / ${m.pluginMemory.on.rssMiB} MiB`,
    );
  }
  const a = r.api;
  if (a && !a.error) {
    const small = a.life[`n${a.scales[0]}`];
    const large = a.life[`n${a.scales[a.scales.length - 1]}`];
    const tmpfs = a.life[`n${a.scales[0]}-tmpfs`];
    add('endpoint life over HTTP (median / p99)', `${ms(small.api.median)} / ${ms(small.api.p99)}`);
    add('kernel floor: same rtnetlink ops (median / p99)', `${ms(small.kernel.median)} / ${ms(small.kernel.p99)}`);
    const ci2 = (v) => (v ? ` [${v[0].toFixed(2)}–${v[1].toFixed(2)}]` : '');
    add(
      'life ÷ kernel floor (median) [95% CI]',
      `${x(small.apiOverKernel.median)}${ci2(small.apiOverKernel.interval95)}`,
      '≤ 1.2',
      verdict(small.apiOverKernel.median, 1.2),
    );
    add('life ÷ kernel floor (p99)', x(small.apiOverKernel.p99));
    add('kernel + disk floor (median)', ms(small.kernelDisk.median));
    add(
      'life ÷ kernel+disk floor (median) [95% CI]',
      `${x(small.apiOverKernelDisk.median)}${ci2(small.apiOverKernelDisk.interval95)}`,
    );
    if (tmpfs)
      add('life with the state on tmpfs; ÷ kernel floor', `${ms(tmpfs.api.median)}; ${x(tmpfs.apiOverKernel.median)}`);
    add(
      'CPU per life: plugin / kernel / kernel+disk floor',
      `${ms(small.cpuMsPerLife.api)} / ${ms(small.cpuMsPerLife.kernel)} / ${ms(small.cpuMsPerLife.kernelDisk)}`,
    );
    for (const scale of a.scales)
      add(
        `life with ${scale} endpoints present (median / p99)`,
        `${ms(a.life[`n${scale}`].api.median)} / ${ms(a.life[`n${scale}`].api.p99)}`,
      );
    add(
      `life at ${a.scale.endpointsLarge} ÷ at ${a.scale.endpointsSmall} [95% CI]`,
      `${x(a.scale.apiLargeOverSmall.median)}${ci2(a.scale.apiLargeOverSmall.interval95)}`,
      '≤ 1.5',
      verdict(a.scale.apiLargeOverSmall.median, 1.5),
    );
    add(
      `kernel floor at ${a.scale.endpointsLarge} ÷ at ${a.scale.endpointsSmall}`,
      x(a.scale.kernelLargeOverSmall.median),
    );
    const mb = large.pluginMemory.peakRssMiB * 1.048576;
    add(
      `plugin peak RSS at ${a.scale.endpointsLarge} endpoints`,
      `${large.pluginMemory.peakRssMiB} MiB (${mb.toFixed(1)} MB)`,
      '< 100 MB',
      mb < 100 ? 'met' : 'MISSED',
    );
    const b = a.burst;
    const clean = b.api.failed === 0 && b.api.distinctAddresses && b.api.endpointLinksLeftAfterTeardown === 0;
    add(
      `burst: ${b.endpoints} created+joined at once`,
      `${ms(b.api.createMs)}, ${b.api.failed} failed`,
      '0 failed',
      clean ? 'met' : 'MISSED',
    );
    add(`burst: kernel creating ${b.endpoints} at once`, ms(b.kernel.createMs));
    if (b.base)
      add(
        `burst: ${b.endpoints} at once, base build (BENCH_BASE_CLI); this ÷ base`,
        `${ms(b.base.createMs)}; ${x(b.createApiOverBase)}`,
      );
    add(
      `burst: ${b.endpoints} torn down at once: answered / links gone / kernel`,
      `${ms(b.api.teardownMs)} / ${ms(b.api.linksGoneMs)} / ${ms(b.kernel.teardownMs)}`,
    );
    add(
      'burst: plugin peak RSS before / after the bursts',
      `${b.pluginMemoryBefore.peakRssMiB} / ${b.pluginMemoryAfter.peakRssMiB} MiB`,
    );
    readme(
      `endpoint life through the API: RequestAddress … ReleaseAddress, ${a.scales[0]} endpoints present`,
      `the same rtnetlink calls, no HTTP, no state: ${ms(small.kernel.median)}`,
      ms(small.api.median),
      x(small.apiOverKernel.median),
    );
    if (tmpfs)
      readme(
        'the same, state on tmpfs (no fsync cost)',
        `same floor: ${ms(small.kernel.median)}`,
        ms(tmpfs.api.median),
        x(tmpfs.apiOverKernel.median),
      );
    readme(
      `endpoint life with ${a.scale.endpointsLarge} endpoints present`,
      `with ${a.scale.endpointsSmall}: ${ms(small.api.median)}`,
      ms(large.api.median),
      x(a.scale.apiLargeOverSmall.median),
    );
    readme(
      `${b.endpoints} endpoints created + joined at once`,
      `the kernel alone: ${ms(b.kernel.createMs)}`,
      `${ms(b.api.createMs)}, ${b.api.failed} failed`,
      x(b.createApiOverKernel),
    );
    readme(
      `plugin memory with ${a.scale.endpointsLarge} endpoints`,
      '',
      `peak RSS ${large.pluginMemory.peakRssMiB} MiB`,
    );
  }
  const mem = r.memory;
  if (mem && !mem.error) {
    const against = (key, unit) =>
      mem.base
        ? `${mem.this[key]} ${unit} (base: ${mem.base[key]} ${unit}, ${x(ratio(mem.this[key], mem.base[key]))})`
        : `${mem.this[key]} ${unit}`;
    add('plugin RSS idle (no network), 2 s after its start', against('idleRssMiB', 'MiB'), '≤ 50 MiB');
    add('plugin RSS idle, 15 s after its start', against('idleSettledRssMiB', 'MiB'), '≤ 50 MiB');
    add(`plugin peak RSS with ${mem.endpoints} endpoints`, against('peakRssMiB', 'MiB'), '≤ 64 MiB');
    add(`restart with ${mem.endpoints} endpoints: first answer`, against('restartFirstAnswerMs', 'ms'), '≤ 400 ms');
    add('plugin RSS after that restart', against('restartRssMiB', 'MiB'));
    for (const name of Object.keys(mem.variants).filter((v) => v.startsWith('flags'))) {
      const f = mem[name];
      add(
        `with ${mem.variants[name].nodeArgs.join(' ')}`,
        `idle ${f.idleRssMiB} / ${f.idleSettledRssMiB} MiB, peak ${f.peakRssMiB} MiB, restart ${f.restartFirstAnswerMs} ms, ` +
          `${mem.endpoints} creates ${f.populateMs} ms`,
      );
    }
    readme(
      'plugin RSS, idle (no network)',
      mem.base ? `previous build: ${mem.base.idleRssMiB} MiB` : '',
      `${mem.this.idleRssMiB} MiB`,
    );
    readme(
      `plugin peak RSS with ${mem.endpoints} endpoints`,
      mem.base ? `previous build: ${mem.base.peakRssMiB} MiB` : '',
      `${mem.this.peakRssMiB} MiB`,
    );
    readme(
      `restart with ${mem.endpoints} endpoints: spawn to first answer`,
      mem.base ? `previous build: ${mem.base.restartFirstAnswerMs} ms` : '',
      `${mem.this.restartFirstAnswerMs} ms`,
    );
  }
  const p = r.dataplane;
  if (p && !p.error) {
    add('TCP throughput container↔container: bridge', `${p.bridge.gbps} Gbit/s`);
    add('TCP throughput container↔container: tsmacvlan', `${p.tsmacvlan.gbps} Gbit/s`);
    add('ping rtt median: bridge / tsmacvlan', `${p.bridge.rttMedianMs} / ${p.tsmacvlan.rttMedianMs} ms`);
    readme(
      'TCP throughput between two containers on one host (iperf3)',
      `Docker bridge network: ${p.bridge.gbps} Gbit/s`,
      `${p.tsmacvlan.gbps} Gbit/s`,
      x(p.tsmacvlanOverBridge.throughput),
    );
    readme(
      'ping round trip between them (median)',
      `Docker bridge network: ${p.bridge.rttMedianMs} ms`,
      `${p.tsmacvlan.rttMedianMs} ms`,
      x(p.tsmacvlanOverBridge.rtt),
    );
  }
  const c = r.cluster;
  if (c && !c.error) {
    const l = c.latency;
    add('cluster RequestAddress p50 / p99: local journal', `${ms(l.localP50Ms)} / ${ms(l.localP99Ms)}`);
    add('cluster RequestAddress p50 / p99: 3-member etcd', `${ms(l.etcdP50Ms)} / ${ms(l.etcdP99Ms)}`);
    const b = c.burst;
    add(
      `cluster burst: ${b.hosts} instances × ${b.asked / b.hosts} over one /22: duplicates / failed / allocations/s`,
      `${b.duplicates} / ${b.failed} / ${b.allocationsPerSecond}`,
    );
    const o = c.burstOver;
    add(
      `cluster burst: ${o.hosts} instances × ${o.asked / o.hosts} over one /22: allocated / refused as full / duplicates`,
      `${o.allocated} / ${o.failed} / ${o.duplicates}`,
    );
    add(
      'cluster: etcd round trips per allocation (sequential / burst × 50 / burst × 100)',
      `${l.etcdTxnsPerAllocation} / ${b.etcdTxnsPerAllocation} / ${o.etcdTxnsPerAllocation}`,
    );
    const h = c.labHost;
    if (h) {
      add(
        'cluster on a lab host, etcd on the LAN: RequestAddress p50 local / cluster',
        `${ms(h.api.localP50Ms)} / ${ms(h.api.clusterP50Ms)}`,
      );
      add(
        'cluster on a lab host: docker run --rm median local / cluster IPAM',
        `${h.docker.localMedianMs} ms / ${h.docker.clusterMedianMs} ms (${h.docker.ratio}x)`,
      );
    }
  }
  const h = r.dhcp;
  /** The split of a lease's time after the server's last answer (dhcp6.mjs, afterAnswerParts), when the plugin logs it. */
  const afterAnswerRow = (parts) => {
    if (!parts) return;
    const { checkOverrunMs, settleMs, writeMs, restMs } = parts;
    add(
      '    of which check overrun / record writes waited / answered write / rest (median)',
      [checkOverrunMs, settleMs, writeMs, restMs].map((p) => ms(p.median)).join(' / '),
    );
  };
  if (h && !h.error) {
    const all = `${h.atOnce} containers at once (docker run -d)`;
    add(`${all}: DHCP / plugin IPAM`, `${ms(h.startAllMs.dhcp.median)} / ${ms(h.startAllMs.ipam.median)}`);
    add(`${all}: DHCP ÷ plugin IPAM`, x(h.dhcpOverIpam));
    add(
      'DHCP CreateEndpoint (plugin log, median) / IPAM',
      `${ms(h.createEndpointMedianMs.dhcp)} / ${ms(h.createEndpointMedianMs.ipam)}`,
    );
    const inFlight = h.createEndpointsInFlight;
    add('CreateEndpoints in flight at once, of the 20: DHCP / IPAM', `${inFlight.dhcp} / ${inFlight.ipam}`);
    add('DHCP lease on the wire: DISCOVER→ACK (median)', ms(h.wire.discoverToAckMs.median));
    add('  the server: DISCOVER→OFFER + REQUEST→ACK (median)', ms(h.wire.serverMs.median));
    add('  the plugin: OFFER→REQUEST (median)', ms(h.wire.pluginOfferToRequestMs.median));
    add('DHCP: ARP check wait (fixed) / plugin own per lease', `${ms(h.arpCheckMs)} / ${ms(h.pluginOwnMsPerLease)}`);
    const own = h.pluginOwnPerLease;
    if (own?.leases) {
      add(
        'DHCP: plugin own per lease, lease by lease (median / p99)',
        `${ms(own.ownMs.median)} / ${ms(own.ownMs.p99)}`,
        '≤ 5 ms',
        verdict(own.ownMs.median, 5),
      );
      add(
        '  before DISCOVER / OFFER→REQUEST / after ACK beyond the check (median)',
        `${ms(own.beforeDiscoverMs.median)} / ${ms(own.offerToRequestMs.median)} / ${ms(own.afterAckBeyondCheckMs.median)}`,
      );
      afterAnswerRow(own.afterAckParts);
    }
    const v6 = h.dhcp6;
    if (v6?.leases) {
      add(
        'DHCPv6: plugin own per lease, lease by lease (median / p99)',
        `${ms(v6.pluginOwnMs.median)} / ${ms(v6.pluginOwnMs.p99)} (server ${ms(v6.serverMs.median)}, check ${ms(v6.checkMs)})`,
        '≤ 5 ms',
        verdict(v6.pluginOwnMs.median, 5),
      );
      if (v6.afterReplyBeyondCheckMs)
        add(
          '  before SOLICIT / ADVERTISE→REQUEST / after REPLY beyond the check (median)',
          `${ms(v6.beforeSolicitMs.median)} / ${ms(v6.advertiseToRequestMs.median)} / ${ms(v6.afterReplyBeyondCheckMs.median)}`,
        );
      afterAnswerRow(v6.afterReplyParts);
    }
    readme(
      `${all}, \`-o dhcp=true\` (dnsmasq)`,
      `\`--ipam-driver tsmacvlan\`: ${ms(h.startAllMs.ipam.median)}`,
      ms(h.startAllMs.dhcp.median),
      x(h.dhcpOverIpam),
    );
  }
  const i = r.ipam;
  if (i && !i.error) {
    add('IPAM fill of a /16: requests/s first 1,000 / last 1,000', `${i.first1000PerSecond} / ${i.last1000PerSecond}`);
    add('IPAM fill: peak RSS', `${i.peakRssMiB} MiB`);
    readme(
      'IPAM: filling a /16 (65,534 addresses) one request at a time',
      `first 1,000: ${i.first1000PerSecond}/s`,
      `last 1,000: ${i.last1000PerSecond}/s`,
      x(i.lastOverFirst),
    );
  }
  const e = r.arm64;
  if (e && !e.error) {
    const s = e.startToSocketMs;
    add('arm64 under qemu: start to socket, amd64 / arm64 (median)', `${ms(s.amd64.median)} / ${ms(s.arm64.median)}`);
    add(
      'arm64 under qemu: endpoint life, amd64 / arm64 (median)',
      `${ms(e.life.amd64.median)} / ${ms(e.life.arm64.median)}`,
    );
    add('arm64 under qemu ÷ amd64: start / life', `${x(e.startArm64OverAmd64)} / ${x(e.lifeArm64OverAmd64)}`);
    readme(
      'arm64 plugin under qemu (not a board): start to socket',
      `amd64: ${ms(s.amd64.median)}`,
      ms(s.arm64.median),
      x(e.startArm64OverAmd64),
    );
    readme(
      'arm64 plugin under qemu: endpoint life through the API',
      `amd64: ${ms(e.life.amd64.median)}`,
      ms(e.life.arm64.median),
      x(e.lifeArm64OverAmd64),
    );
  }
  return { rows, readme: markdown(['operation', 'baseline', 'tsmacvlan', 'ratio'], readmeRows) };
}
