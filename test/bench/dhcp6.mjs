// DHCPv6 leases under a lab engine that takes --ipv6 with the null IPAM (Docker 28+): AT_ONCE containers at once on
// an IPv6-only DHCP network (`--ipv4=false --ipv6 -o dhcp=true`) whose router (the bench's dnsmasq, `enable-ra` with
// a DHCPv6 range) sends the M flag. The plugin's own time per lease, lease by lease: CreateEndpoint as the plugin
// logs it ('DHCPv6 endpoint created'), less that lease's server turnaround on the wire (SOLICIT→ADVERTISE,
// REQUEST→REPLY, captured on the switch's port by the DHCP section's tcpdump) and the duplicate address check's
// fixed wait; and where it went (before the SOLICIT, ADVERTISE→REQUEST, after the REPLY beyond the check).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { DIST, DOCKER, hex, round, run, summary } from './lib.mjs';

const require = createRequire(import.meta.url);
const { parseUdp6Frame } = require(join(DIST, 'dhcp6/frame.js'));
const { decodeMessage } = require(join(DIST, 'dhcp6/message.js'));
const { ProbeTiming } = require(join(DIST, 'probe/address-probes.js'));

const IMAGE = process.env.TSMV_TEST_IMAGE ?? 'tsmacvlan-test/busybox:latest';
export const V6 = 'fd35:40::';
/** What dnsmasq needs beside its DHCPv4 range for the M flag: adverts, and a DHCPv6 range of the bridge's prefix. */
export const DNSMASQ_V6 = ['--enable-ra', `--dhcp-range=${V6}10,${V6}fff,64,2m`];

/**
 * Where a lease's time after the server's last answer (ACK, REPLY) at `answeredAt` went, beyond the check's fixed
 * `checkMs`, from the plugin's log line: the check's end past its due time (timers), the wait for the unanswered
 * record's writes, the answered record's write, and the rest. Empty for a plugin whose lines lack the figures.
 */
export function afterAnswerParts(entry, answeredAt, checkMs) {
  const start = entry.time - entry.ms;
  if (entry.checkedMs === undefined || entry.writeMs === undefined) return {};
  const checkOverrun = start + entry.checkedMs - answeredAt - checkMs;
  const after = entry.time - answeredAt - checkMs;
  return {
    checkOverrun,
    settle: entry.settleMs,
    write: entry.writeMs,
    rest: after - checkOverrun - entry.settleMs - entry.writeMs,
  };
}

/** The summaries of each part of afterAnswerParts over the leases (parts: a list of its results). */
export function partSummaries(parts) {
  const names = ['checkOverrun', 'settle', 'write', 'rest'];
  const known = parts.filter((p) => p.write !== undefined);
  if (known.length === 0) return undefined;
  return Object.fromEntries(names.map((name) => [`${name}Ms`, summary(known.map((p) => p[name]))]));
}

/** Whether the lab engine takes `--ipv6` with the null IPAM (28.0 and later). */
export function engineTakesV6() {
  const major = Number((process.env.TSMV_ENGINE ?? '20.10').split('.')[0]);
  return major >= 28;
}

/** The DHCPv6 messages of a pcap file: [{ at (ms), type, xid, mac }] (the MAC from the client's DUID-LL). */
function dhcp6Messages(file) {
  const buf = readFileSync(file);
  const messages = [];
  for (let at = 24; at + 16 <= buf.length;) {
    const length = buf.readUInt32LE(at + 8);
    const frame = buf.subarray(at + 16, at + 16 + length);
    const ms = buf.readUInt32LE(at) * 1000 + buf.readUInt32LE(at + 4) / 1000;
    at += 16 + length;
    if (frame.length < 14 || frame.readUInt16BE(12) !== 0x86dd) continue;
    try {
      const { type, xid, clientId } = decodeMessage(parseUdp6Frame(frame).payload);
      if (clientId?.startsWith('00:03:00:01:')) messages.push({ at: ms, type, xid, mac: clientId.slice(12) });
    } catch {
      // not DHCPv6, or a truncated last record
    }
  }
  return messages;
}

/** AT_ONCE containers at once on the IPv6-only DHCP network, `rounds` times; the per-lease figures. */
export async function benchDhcp6({ plugin, parent, capture, stopCapture, driver, prefix, atOnce, rounds }) {
  const network = `${prefix}lease6`;
  const create = ['network', 'create', '-d', driver, '--ipam-driver', 'null', '--ipv6', '--ipv4=false'];
  await run(DOCKER, [...create, '-o', `parent=${parent}`, '-o', 'dhcp=true', network]);
  const from = plugin.logPosition();
  const walls = [];
  for (let r = 0; r < rounds; r++) {
    const names = Array.from({ length: atOnce }, () => `${prefix}${hex(4)}`);
    const t0 = performance.now();
    await Promise.all(
      names.map((n) => run(DOCKER, ['run', '-d', '--name', n, '--network', network, IMAGE, 'sleep', '1h'])),
    );
    walls.push(performance.now() - t0);
    await run(DOCKER, ['rm', '-f', ...names]);
  }
  await stopCapture();
  const messages = dhcp6Messages(capture);
  const checkMs = (ProbeTiming.probes - 1) * ProbeTiming.intervalMs + ProbeTiming.finalWaitMs;
  const own = [];
  const server = [];
  const beforeSolicit = [];
  const advertiseToRequest = [];
  const afterReply = [];
  const parts = [];
  for (const line of plugin.logLines(from)) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line);
    if (entry.msg !== 'DHCPv6 endpoint created') continue;
    const start = entry.time - entry.ms;
    const seen = messages.filter((m) => m.mac === entry.mac && m.at >= start - 5 && m.at <= entry.time + 5);
    const first = (type) => seen.find((m) => m.type === type)?.at;
    const last = (type) => seen.filter((m) => m.type === type).at(-1)?.at;
    const [solicit, advertise, request, reply] = [first('solicit'), first('advertise'), last('request'), last('reply')];
    if ([solicit, advertise, request, reply].some((t) => t === undefined)) continue;
    const turnaround = advertise - solicit + (reply - request);
    server.push(turnaround);
    own.push(entry.ms - turnaround - checkMs);
    beforeSolicit.push(solicit - start);
    advertiseToRequest.push(request - advertise);
    afterReply.push(entry.time - reply - checkMs);
    parts.push(afterAnswerParts(entry, reply, checkMs));
  }
  return {
    atOnce,
    rounds,
    startAllMs: summary(walls),
    leases: own.length,
    checkMs,
    serverMs: summary(server),
    pluginOwnMs: summary(own),
    pluginOwnMedianMs: round(summary(own).median),
    // Where the plugin's own time went: before the SOLICIT left, ADVERTISE→REQUEST, and after the REPLY beyond the
    // check's wait, split by the plugin's log line.
    beforeSolicitMs: summary(beforeSolicit),
    advertiseToRequestMs: summary(advertiseToRequest),
    afterReplyBeyondCheckMs: summary(afterReply),
    afterReplyParts: partSummaries(parts),
  };
}
