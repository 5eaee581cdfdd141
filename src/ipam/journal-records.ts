// The journal's record types: one JSON object per line, its type in `t`. The lines written per request (takes, frees,
// answers) are built as template strings, the cheapest way to write them; every line is read back with JSON.parse.
import { contains, parseCidr, parseIp, type Cidr } from '../ip/address';

export type TakeKind = 'gateway' | 'aux' | 'static' | 'dynamic';

/**
 * The journal's format, in its header. 1: no answer marks (every line counts as answered). 2 (tsmacvlan 0.1.0): the
 * header says how many lines the snapshot has; later takes are unanswered until their 'ok' line. 3: device holdings
 * (record 'v'), which a reader of format 2 would not know. 4: 'due' lines, addresses whose endpoint is gone and whose
 * ReleaseAddress is awaited (a journal of format 3 has none). 5: 'prefix' lines, what the LAN's router says of the prefix of a
 * pool of --ipam-opt ipv6=slaac (withdrawn, deprecated, expired), which a reader of format 4 would not know.
 */
export const JOURNAL_FORMAT = 5;

/** The value of `t` of each record type. */
export const RECORD = {
  /** The first line: the subnet, and (format 2) how many lines the snapshot after it has. */
  header: 'subnet',
  /** A pool in a snapshot, with its reference count. */
  pool: 'pool',
  /** A RequestPool: a new pool, or one more reference to one. */
  acquire: 'acquire',
  /** The change before was answered (an address with `a`, else a pool reference). */
  answered: 'ok',
  /** A ReleasePool: one reference fewer. */
  release: 'release',
  /** A dynamic range's position (cursor, released addresses queued, sweep) in a snapshot. */
  range: 'lane',
  /** A ReleaseAddress. */
  freed: 'f',
  /** A dynamic take that found nothing but moved the range's position. */
  exhausted: 'exhausted',
  /** An address a device on the LAN answered for (a probe): kept from containers until a later probe finds it gone. */
  device: 'v',
  /** The endpoint holding an address is gone: Docker's ReleaseAddress is due by `by` (ms since the epoch). */
  due: 'due',
  /** The router no longer offers the prefix of a pool of ipv6=slaac (`c`: how, `at`: since when), or again (`c` valid). */
  prefix: 'prefix',
} as const;

/** What the LAN's router says of a pool's prefix: lost (for a reason, since `at`, epoch ms), or offered again. */
export type PoolPrefixLoss = { condition: 'deprecated' | 'withdrawn' | 'expired'; at: number };
export const PREFIX_CONDITIONS = ['valid', 'deprecated', 'withdrawn', 'expired'] as const;

/** The value of `t` of a take, per kind of address. */
export const TAKE_RECORD: Record<TakeKind, string> = { gateway: 'g', aux: 'x', static: 's', dynamic: 'd' };
const KIND_OF_TAKE_RECORD: Record<string, TakeKind> = { g: 'gateway', x: 'aux', s: 'static', d: 'dynamic' };

/** The kind of address a record takes, when it is a take. */
export function takeKindOf(type: unknown): TakeKind | undefined {
  return typeof type === 'string' ? KIND_OF_TAKE_RECORD[type] : undefined;
}

/** The lines, by record type. `a` is an address as text, `p` a pool's journal number, `u` how many are unanswered. */
export const journalLine = {
  header: (subnet: string, lines: number) =>
    JSON.stringify({ t: RECORD.header, subnet, format: JOURNAL_FORMAT, lines }),
  acquire: (p: number, id: string, range: Cidr | undefined, options: Record<string, string>) =>
    JSON.stringify({ t: RECORD.acquire, p, id, range: range?.text ?? null, options }),
  pool: (p: number, id: string, range: Cidr | undefined, options: Record<string, string>, refs: number, u: number) =>
    JSON.stringify({ t: RECORD.pool, p, id, range: range?.text ?? null, options, refs, ...(u > 0 && { u }) }),
  take: (kind: TakeKind, a: string, p: number) => `{"t":"${TAKE_RECORD[kind]}","a":"${a}","p":${p}}`,
  /** A take in a snapshot: a gateway with how many requests hold it (`c`), and how many are unanswered. */
  heldTake: (kind: TakeKind, a: string, p: number, c: number | undefined, u: number | undefined) =>
    `{"t":"${TAKE_RECORD[kind]}","a":"${a}","p":${p}${c === undefined ? '' : `,"c":${c}`}${u ? `,"u":${u}` : ''}}`,
  freed: (a: string, p: number) => `{"t":"${RECORD.freed}","a":"${a}","p":${p}}`,
  answeredTake: (a: string, p: number) => `{"t":"${RECORD.answered}","a":"${a}","p":${p}}`,
  answeredAcquire: (p: number) => `{"t":"${RECORD.answered}","p":${p}}`,
  release: (p: number) => `{"t":"${RECORD.release}","p":${p}}`,
  exhausted: (p: number) => `{"t":"${RECORD.exhausted}","p":${p}}`,
  device: (a: string, p: number, mac: string, since: number) =>
    `{"t":"${RECORD.device}","a":"${a}","p":${p},"mac":"${mac}","since":${since}}`,
  prefix: (p: number, loss: PoolPrefixLoss | undefined) =>
    loss
      ? `{"t":"${RECORD.prefix}","p":${p},"c":"${loss.condition}","at":${loss.at}}`
      : `{"t":"${RECORD.prefix}","p":${p},"c":"valid"}`,
  due: (a: string, p: number, by: number) => `{"t":"${RECORD.due}","a":"${a}","p":${p},"by":${by}}`,
  range: (range: string | null, next: string, fifo: string[], sweep: boolean) =>
    JSON.stringify({ t: RECORD.range, range, next, fifo, sweep }),
};

/** What a pool is made of: its id, its --ip-range, its --ipam-opt values. */
export interface PoolSpec {
  id: string;
  range?: Cidr;
  options: Record<string, string>;
}

/** Journal lines carry JSON objects; this is what one looks like after JSON.parse. */
export type JournalRecord = Record<string, unknown>;

export function str(record: JournalRecord, key: string): string {
  const value = record[key];
  if (typeof value !== 'string') throw new Error(`field '${key}' is not a string`);
  return value;
}

export function int(record: JournalRecord, key: string): number {
  const value = record[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw new Error(`field '${key}' is not a non-negative integer`);
  return value;
}

export function offset(value: unknown, key: string): bigint {
  if (typeof value !== 'string' || !/^[0-9]{1,40}$/.test(value))
    throw new Error(`field '${key}' is not a decimal offset`);
  return BigInt(value);
}

/** The address in `a`, which must be in `subnet`. */
export function addressField(record: JournalRecord, subnet: Cidr): bigint {
  const text = str(record, 'a');
  const ip = parseIp(text);
  if (!ip || ip.v6 !== subnet.v6 || !contains(subnet, ip.value))
    throw new Error(`address '${text}' is not in subnet ${subnet.text}`);
  return ip.value;
}

/** A pool's id, options and range (a prefix of `subnet`, or null). */
export function poolSpecFields(record: JournalRecord, subnet: Cidr): PoolSpec {
  const range = record.range;
  const options = record.options;
  if (
    options === null ||
    typeof options !== 'object' ||
    Array.isArray(options) ||
    Object.values(options).some((v) => typeof v !== 'string')
  ) {
    throw new Error(`field 'options' is not an object of strings`);
  }
  const spec: PoolSpec = { id: str(record, 'id'), options: options as Record<string, string> };
  if (range !== null) {
    if (typeof range !== 'string') throw new Error(`field 'range' is not a string`);
    const parsed = parseCidr(range);
    if (
      !parsed.ok ||
      parsed.cidr.v6 !== subnet.v6 ||
      parsed.cidr.base < subnet.base ||
      parsed.cidr.last > subnet.last
    ) {
      throw new Error(`range '${range}' is not a prefix of subnet ${subnet.text}`);
    }
    spec.range = parsed.cidr;
  }
  return spec;
}
