// Fills a /16 through the HTTP API (a real unix socket, keep-alive), as Docker would one container at a time, and
// reports whether the cost per request stays flat: requests/s of the first and last 1,000, peak RSS, state on disk.
// Runs against the build: `npm run build && node test/bench/ipam-fill.mjs`. BENCH_OUT=<file> also writes the JSON.
// BENCH_CONCURRENCY=<n> keeps n requests in flight (default 1: sequential, each one pays its own fsync).
// BENCH_DIR=<dir> puts the state there (default: the OS temp dir); on a tmpfs fsync is free, leaving the code's own cost.
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const dist = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../../dist');
const { buildServer } = require(join(dist, 'api/server.js'));
const { NetworkDriver } = require(join(dist, 'driver/driver.js'));
const { Links } = require(join(dist, 'kernel/links.js'));
const { IpamService } = require(join(dist, 'ipam/service.js'));
const pino = require('pino');

const SUBNET = '10.200.0.0/16';
const TOTAL = 65_534;
const WINDOW = 1_000;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 1);

const stateDir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'tsmacvlan-bench-ipam-'));
const socketPath = join(stateDir, 'plugin.sock');
const log = pino({ level: 'silent' });
const links = new Links();
let ipam = new IpamService(stateDir, log);
const app = buildServer({ driver: new NetworkDriver(links, stateDir, log), ipam }, log);
await app.listen({ path: socketPath });

const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(1, CONCURRENCY) });
function post(method, body) {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    // Like Docker: no Content-Type.
    const req = http.request(
      {
        socketPath,
        agent,
        method: 'POST',
        path: `/${method}`,
        headers: { Accept: 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(Buffer.concat(chunks).toString()) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function diskBytes(dir) {
  let total = 0;
  for (const name of readdirSync(dir)) total += statSync(join(dir, name)).size;
  return total;
}

// Warm-up on another subnet (JIT, sockets), released before the measured fill starts.
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2_000);
if (WARMUP > 0) {
  const warm = await post('IpamDriver.RequestPool', {
    AddressSpace: 'local',
    Pool: '10.201.0.0/16',
    SubPool: '',
    Options: {},
    V6: false,
  });
  for (let i = 0; i < WARMUP; i++)
    await post('IpamDriver.RequestAddress', { PoolID: warm.json.PoolID, Address: '', Options: null });
  await post('IpamDriver.ReleasePool', { PoolID: warm.json.PoolID });
}

const pool = await post('IpamDriver.RequestPool', {
  AddressSpace: 'local',
  Pool: SUBNET,
  SubPool: '',
  Options: {},
  V6: false,
});
if (pool.status !== 200) throw new Error(`RequestPool failed: ${JSON.stringify(pool.json)}`);
const PoolID = pool.json.PoolID;

// done[i] = when request i completed (ms); CPU time (user+system, µs) at the edges of the first and last windows.
const done = new Float64Array(TOTAL);
const cpu = {};
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const seen = new Set();
let next = 0;
const t0 = performance.now();
cpu.start = cpuNow();
async function worker() {
  while (next < TOTAL) {
    const i = next++;
    const res = await post('IpamDriver.RequestAddress', {
      PoolID,
      Address: '',
      Options: { 'com.docker.network.endpoint.macaddress': '02:42:00:00:00:00' },
    });
    if (res.status !== 200) throw new Error(`request ${i} failed: ${JSON.stringify(res.json)}`);
    if (seen.has(res.json.Address)) throw new Error(`${res.json.Address} handed out twice`);
    seen.add(res.json.Address);
    done[i] = performance.now();
    const completed = i + 1;
    if (completed === WINDOW) cpu.firstEnd = cpuNow();
    if (completed === TOTAL - WINDOW) cpu.lastStart = cpuNow();
    if (completed === TOTAL) cpu.lastEnd = cpuNow();
  }
}
await Promise.all(Array.from({ length: Math.max(1, CONCURRENCY) }, worker));
const elapsed = performance.now() - t0;

const full = await post('IpamDriver.RequestAddress', { PoolID, Address: '', Options: null });
if (full.status !== 500 || !full.json.Err.includes('exhausted'))
  throw new Error(`expected exhaustion, got ${JSON.stringify(full.json)}`);

// Completion times are monotonic per worker; with several workers, sort them.
const times = Array.from(done).sort((a, b) => a - b);
const firstRate = (WINDOW / (times[WINDOW - 1] - t0)) * 1000;
const lastRate = (WINDOW / (times[TOTAL - 1] - times[TOTAL - WINDOW - 1])) * 1000;
// Requests/s per 4,096 requests over the whole fill: shows whether a trend is the code's or the disk's noise.
const profile = [];
for (let k = 4096; k <= TOTAL; k += 4096)
  profile.push(Math.round((4096 / (times[k - 1] - (k > 4096 ? times[k - 4097] : t0))) * 1000));
const cpuFirst = (cpu.firstEnd - cpu.start) / WINDOW;
const cpuLast = (cpu.lastEnd - cpu.lastStart) / WINDOW;
const stats = ipam.stats(); // includes the warm-up's
const stateBytes = diskBytes(join(stateDir, 'ipam'));

await app.close();
await ipam.close();
const loadStart = performance.now();
ipam = new IpamService(stateDir, log);
const loadMs = performance.now() - loadStart;
const reloaded = ipam.listPools()[0].allocated;
await ipam.close();
links.close();
agent.destroy();

const result = {
  stateDir: process.env.BENCH_DIR ?? tmpdir(),
  subnet: SUBNET,
  addresses: TOTAL,
  concurrency: CONCURRENCY,
  warmupRequests: WARMUP,
  distinct: seen.size,
  totalSeconds: +(elapsed / 1000).toFixed(2),
  overallPerSecond: Math.round((TOTAL / elapsed) * 1000),
  first1000PerSecond: Math.round(firstRate),
  last1000PerSecond: Math.round(lastRate),
  lastOverFirst: +(lastRate / firstRate).toFixed(2),
  cpuMicrosPerRequestFirst1000: Math.round(cpuFirst),
  cpuMicrosPerRequestLast1000: Math.round(cpuLast),
  cpuLastOverFirst: +(cpuLast / cpuFirst).toFixed(2),
  perSecondEvery4096: profile,
  journalSyncs: stats.syncs,
  journalLines: stats.lines,
  peakRssMiB: +(process.resourceUsage().maxRSS / 1024).toFixed(1),
  stateBytesOnDisk: stateBytes,
  restartLoadMs: Math.round(loadMs),
  reloadedAllocated: reloaded,
  node: process.version,
};
rmSync(stateDir, { recursive: true, force: true });
console.log(JSON.stringify(result, null, 2));
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, `${JSON.stringify(result, null, 2)}\n`);
