// DHCP networks under the lab's Docker Engine: 20 containers started at once (`docker run -d` in parallel) on a
// DHCP network (`--ipam-driver null -o dhcp=true`, dnsmasq as the LAN's server) vs on a network with the plugin's
// IPAM, rounds interleaved in a fresh random order. Where a DHCP lease's time goes: every DHCP frame on the switch's
// port is captured (tcpdump, kernel timestamps), so the server's turnaround (DISCOVER→OFFER, REQUEST→ACK) and the
// plugin's (OFFER→REQUEST) are read off the wire, beside CreateEndpoint as the plugin logs it.
//
// The switch is a namespace of the bench's own (tsbench-*) with a bridge, dnsmasq and the peer of the parent veth; the
// parent holds 10.235.40.254/24, so nothing of the subnet routes out. Docker objects are named tsmv-bench-dhcp-*.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  DIST,
  envInt,
  hex,
  log,
  median,
  onCleanup,
  ratio,
  requestTimes,
  round,
  run,
  shuffle,
  sleep,
  startPlugin,
  summary,
  tempDir,
  DOCKER,
  removeDockerObjects,
} from './lib.mjs';
import { afterAnswerParts, benchDhcp6, DNSMASQ_V6, engineTakesV6, partSummaries, V6 } from './dhcp6.mjs';

const require = createRequire(import.meta.url);
const { parseFrame } = require(join(DIST, 'dhcp/frame.js'));
const { decodeMessage } = require(join(DIST, 'dhcp/message.js'));
const { Timing } = require(join(DIST, 'dhcp/client.js'));

const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
const PREFIX = 'tsmv-bench-dhcp-';
const DRIVER = 'tsmv-bench-dhcp';
const SOCKET = `/run/docker/plugins/${DRIVER}.sock`;
const NET = '10.235.40';
const AT_ONCE = 20;

const docker = (args, opts) => run(DOCKER, args, opts);

/** Runs a program until stop(); for dnsmasq and tcpdump in the switch's namespace. */
function daemon(args) {
  const child = spawn('ip', args, { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
  };
  onCleanup(stop);
  return { stop };
}

async function setUp(dir) {
  if (!process.env.TSMV_ENGINE_ROOT)
    throw new Error('the DHCP bench drives only a lab engine of its own: run it with npm run bench');
  const id = hex(3);
  const ns = `tsbench-${id}sw`;
  const parent = `tsbench${id}`;
  const port = `${parent}p`;
  onCleanup(async () => {
    await run('ip', ['netns', 'del', ns], { allowFail: true });
    await run('ip', ['link', 'del', parent], { allowFail: true });
  });
  const inNs = (...args) => run('ip', ['-n', ns, ...args]);
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', port, 'netns', ns]);
  await inNs('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
  await inNs('link', 'set', port, 'master', 'br0', 'up');
  await inNs('addr', 'add', `${NET}.1/24`, 'dev', 'br0');
  if (engineTakesV6()) await inNs('-6', 'addr', 'add', `${V6}1/64`, 'dev', 'br0', 'nodad');
  await inNs('link', 'set', 'br0', 'up');
  await run('ip', ['addr', 'add', `${NET}.254/24`, 'dev', parent]);
  await run('ip', ['link', 'set', parent, 'up']);

  const logFile = join(dir, 'dnsmasq.log');
  const dnsmasq = [
    ...['netns', 'exec', ns, '/usr/sbin/dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--port=0'],
    ...['--no-ping', '--user=root', '--interface=br0', '--bind-interfaces', '--dhcp-authoritative'],
    `--dhcp-range=${NET}.10,${NET}.250,255.255.255.0,2m`,
    `--dhcp-option=option:router,${NET}.1`,
    `--dhcp-leasefile=${join(dir, 'leases')}`,
    `--pid-file=${join(dir, 'dnsmasq.pid')}`,
    `--log-facility=${logFile}`,
    ...(engineTakesV6() ? DNSMASQ_V6 : []),
  ];
  daemon(dnsmasq);
  for (let i = 0; i < 200 && !(existsSync(logFile) && readFileSync(logFile, 'utf8').includes('DHCP, IP range')); i++)
    await sleep(50);

  const capture = join(dir, 'dhcp.pcap');
  const tcpdump = daemon([
    'netns',
    'exec',
    ns,
    'tcpdump',
    '-i',
    port,
    '-U',
    '-w',
    capture,
    'udp port 67 or udp port 68 or udp port 546 or udp port 547',
  ]);
  for (let i = 0; i < 200 && !existsSync(capture); i++) await sleep(50);

  const plugin = await startPlugin({ socket: SOCKET, stateDir: dir });
  onCleanup(() => plugin.stop());
  onCleanup(() => removeDockerObjects(PREFIX)); // registered after the plugin: runs before it stops
  await removeDockerObjects(PREFIX);
  const networks = { dhcp: `${PREFIX}lease`, ipam: `${PREFIX}ipam` };
  const create = ['network', 'create', '-d', DRIVER, '-o', `parent=${parent}`];
  await docker([...create, '--ipam-driver', 'null', '-o', 'dhcp=true', networks.dhcp]);
  await docker([...create, '--ipam-driver', DRIVER, '--subnet', '10.235.41.0/24', networks.ipam]);
  return { plugin, parent, networks, capture, stopCapture: tcpdump.stop };
}

/** `docker run -d` of AT_ONCE containers at the same time; the wall time until the last one returned. */
async function startAtOnce(network) {
  const names = Array.from({ length: AT_ONCE }, () => `${PREFIX}${hex(4)}`);
  const t0 = performance.now();
  await Promise.all(
    names.map((name) => docker(['run', '-d', '--name', name, '--network', network, IMAGE, 'sleep', '3600'])),
  );
  const ms = performance.now() - t0;
  await docker(['rm', '-f', ...names]);
  return ms;
}

/** The DHCP messages of a pcap file (Ethernet, microsecond timestamps): [{ at (ms), type, xid, chaddr }]. */
function dhcpMessages(file) {
  const buf = readFileSync(file);
  if (buf.length < 24 || buf.readUInt32LE(0) !== 0xa1b2c3d4) throw new Error(`${file} is not a little-endian pcap`);
  const messages = [];
  for (let at = 24; at + 16 <= buf.length;) {
    const length = buf.readUInt32LE(at + 8);
    const frame = buf.subarray(at + 16, at + 16 + length);
    const ms = buf.readUInt32LE(at) * 1000 + buf.readUInt32LE(at + 4) / 1000;
    at += 16 + length;
    try {
      const parsed = parseFrame(frame);
      if (parsed.kind !== 'udp') continue;
      const { type, xid, chaddr } = decodeMessage(parsed.datagram.payload);
      messages.push({ at: ms, type, xid, chaddr });
    } catch {
      // a truncated last record
    }
  }
  return messages;
}

/** Per lease (one DISCOVER→ACK transaction on the wire): the server's turnaround and the plugin's, in ms. */
function leaseTimes(messages) {
  const byXid = new Map();
  for (const m of messages) {
    const first = byXid.get(m.xid) ?? {};
    first[m.type] ??= m.at; // the first of each type (a retransmission does not move it)
    byXid.set(m.xid, first);
  }
  const leases = [...byXid.values()].filter((t) => t.discover && t.offer && t.request && t.ack);
  return {
    leases: leases.length,
    retransmitted: messages.filter((m) => m.type === 'discover').length - byXid.size,
    serverMs: summary(leases.map((t) => t.offer - t.discover + (t.ack - t.request))),
    pluginOfferToRequestMs: summary(leases.map((t) => t.request - t.offer)),
    discoverToAckMs: summary(leases.map((t) => t.ack - t.discover)),
  };
}

/**
 * The plugin's own time per lease, lease by lease: each DHCP CreateEndpoint as the plugin logs it ('DHCP endpoint
 * created': MAC, duration, end time), less that lease's server turnaround on the wire (its DISCOVER→OFFER and
 * REQUEST→ACK) and the ARP check's fixed wait; and where the rest went: before the DISCOVER left, OFFER→REQUEST, and
 * after the ACK beyond the check's wait (split by the plugin's log line: see afterAnswerParts).
 */
function ownTimes(lines, messages, probeMs) {
  const byMac = new Map();
  for (const m of messages) {
    const list = byMac.get(m.chaddr) ?? [];
    list.push(m);
    byMac.set(m.chaddr, list);
  }
  const own = [];
  const before = [];
  const offerToRequest = [];
  const afterAck = [];
  const parts = [];
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line);
    if (entry.msg !== 'DHCP endpoint created') continue;
    const start = entry.time - entry.ms;
    // The transaction of this lease: its messages between the request's start and end.
    const seen = (byMac.get(entry.mac) ?? []).filter((m) => m.at >= start - 5 && m.at <= entry.time + 5);
    const first = (type) => seen.find((m) => m.type === type)?.at;
    const last = (type) => seen.filter((m) => m.type === type).at(-1)?.at;
    const [discover, offer, request, ack] = [first('discover'), first('offer'), last('request'), last('ack')];
    if ([discover, offer, request, ack].some((t) => t === undefined)) continue;
    own.push(entry.ms - (offer - discover) - (ack - request) - probeMs);
    before.push(discover - start);
    offerToRequest.push(request - offer);
    afterAck.push(entry.time - ack - probeMs);
    parts.push(afterAnswerParts(entry, ack, probeMs));
  }
  return {
    leases: own.length,
    ownMs: summary(own),
    beforeDiscoverMs: summary(before),
    offerToRequestMs: summary(offerToRequest),
    afterAckBeyondCheckMs: summary(afterAck),
    // That last part, split: the check's end past its due time, the wait for the unanswered record's writes, the
    // answered record's write (temporary file, fsync, rename, directory fsync), the rest.
    afterAckParts: partSummaries(parts),
  };
}

/** The most CreateEndpoint requests the plugin had in flight at once, from its log lines (end time and duration). */
function mostInFlight(lines) {
  const edges = [];
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line);
    if (entry.msg !== 'request' || entry.method !== '/NetworkDriver.CreateEndpoint') continue;
    edges.push([entry.time - entry.ms, 1], [entry.time, -1]);
  }
  let now = 0;
  let most = 0;
  for (const [, step] of edges.sort((a, b) => a[0] - b[0] || a[1] - b[1])) most = Math.max(most, (now += step));
  return most;
}

export async function benchDhcp() {
  const rounds = envInt('BENCH_DHCP_ROUNDS', 5);
  const dir = tempDir('tsmv-bench-dhcp-');
  const { plugin, parent, networks, capture, stopCapture } = await setUp(dir);
  log(`dhcp: 1 warm-up + ${rounds} rounds × ${AT_ONCE} containers at once (DHCP, plugin IPAM), shuffled each round`);
  for (const variant of ['dhcp', 'ipam']) await startAtOnce(networks[variant]);
  const samples = { dhcp: [], ipam: [] };
  const createEndpoint = { dhcp: [], ipam: [] };
  const inFlight = { dhcp: [], ipam: [] };
  for (let r = 0; r < rounds; r++) {
    for (const variant of shuffle(['dhcp', 'ipam'])) {
      const from = plugin.logPosition();
      samples[variant].push(await startAtOnce(networks[variant]));
      const times = requestTimes(plugin.logLines(from))['NetworkDriver.CreateEndpoint'];
      if (times) createEndpoint[variant].push(times.medianMs);
      inFlight[variant].push(mostInFlight(plugin.logLines(from)));
    }
    log(`  dhcp: ${r + 1}/${rounds} rounds`);
  }
  // Docker 28+: the same for DHCPv6 leases, on an IPv6-only network (dhcp6.mjs); it stops the capture.
  const dhcp6 = engineTakesV6()
    ? await benchDhcp6({
        plugin,
        parent,
        capture,
        stopCapture,
        driver: DRIVER,
        prefix: PREFIX,
        atOnce: AT_ONCE,
        rounds,
      })
    : undefined;
  if (!dhcp6) await stopCapture();
  const logLines = plugin.logLines(0);
  const dhcp = summary(samples.dhcp);
  const ipam = summary(samples.ipam);
  const messages = dhcpMessages(capture);
  const wire = leaseTimes(messages);
  const probeMs = (Timing.probes - 1) * Timing.probeIntervalMs + Timing.probeFinalWaitMs;
  const createMs = median(createEndpoint.dhcp);
  return {
    rounds,
    atOnce: AT_ONCE,
    startAllMs: { dhcp, ipam },
    dhcpOverIpam: ratio(dhcp.median, ipam.median),
    createEndpointMedianMs: { dhcp: round(createMs), ipam: round(median(createEndpoint.ipam)) },
    // Of the 20 started at once, how many CreateEndpoints Docker had sent the plugin at the same time (median round).
    createEndpointsInFlight: { dhcp: median(inFlight.dhcp), ipam: median(inFlight.ipam) },
    wire,
    arpCheckMs: probeMs,
    // CreateEndpoint less the server's turnaround and the ARP check's fixed wait: what the plugin itself spent.
    pluginOwnMsPerLease: round(createMs - wire.serverMs.median - probeMs),
    // The same, lease by lease (its own CreateEndpoint and its own turnaround on the wire), and where it went.
    pluginOwnPerLease: ownTimes(logLines, messages, probeMs),
    ...(dhcp6 && { dhcp6 }),
  };
}
