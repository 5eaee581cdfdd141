// Shared pieces of the cluster table's integration tests: a counted etcd connection, tables on temp state dirs, and
// direct reads of what etcd holds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { type ClusterKv, EtcdKv, type EtcdSettings } from '../../../src/cluster/etcd';
import { decodeClaims, type Claim } from '../../../src/cluster/keys';
import { ClusterTable } from '../../../src/cluster/table';
import { type Cidr, parseCidr, usableBounds } from '../../../src/ip/address';

export const PREFIX = 'tmvE';

/** Counts calls by kind: what the round-trip figures are made of. */
export class CountingKv implements ClusterKv {
  counts = { range: 0, create: 0, replace: 0, watch: 0 };

  constructor(readonly inner: ClusterKv) {}

  get endpoints(): string[] {
    return this.inner.endpoints;
  }
  get prefix(): string {
    return this.inner.prefix;
  }
  get total(): number {
    return this.counts.range + this.counts.create + this.counts.replace + this.counts.watch;
  }
  range(prefix: string) {
    this.counts.range++;
    return this.inner.range(prefix);
  }
  create(key: string, value: string) {
    this.counts.create++;
    return this.inner.create(key, value);
  }
  replace(key: string, modRevision: bigint, value: string | undefined) {
    this.counts.replace++;
    return this.inner.replace(key, modRevision, value);
  }
  watch(...args: Parameters<ClusterKv['watch']>) {
    this.counts.watch++;
    return this.inner.watch(...args);
  }
  close() {
    return this.inner.close();
  }
}

export function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(parsed.why);
  return parsed.cidr;
}

/** The tables' log: silent, or to stderr at the level in TMVE_LOG (e.g. debug) when a test needs looking into. */
export const testLog = pino({ level: process.env.TMVE_LOG ?? 'silent' }, pino.destination(2));

/** Tables made by a test, closed and their dirs removed by `closeAll`. */
export class Tables {
  private readonly made: { table: ClusterTable; kv: CountingKv; dir: string }[] = [];

  constructor(private readonly settings: () => EtcdSettings) {}

  open(
    instance: string,
    dir?: string,
    extra: Partial<EtcdSettings> = {},
  ): { table: ClusterTable; kv: CountingKv; dir: string } {
    const stateDir = dir ?? mkdtempSync(join(tmpdir(), `${PREFIX}-state-`));
    const kv = new CountingKv(new EtcdKv({ ...this.settings(), ...extra }));
    const table = ClusterTable.open({ kv, instance, stateDir, log: testLog });
    const made = { table, kv, dir: stateDir };
    this.made.push(made);
    return made;
  }

  async closeAll(): Promise<void> {
    for (const { table, kv, dir } of this.made.splice(0)) {
      await table.close().catch(() => undefined);
      await kv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** What etcd holds under `prefix` for `subnet`: address → claims. */
export async function heldIn(kv: ClusterKv, subnet: Cidr): Promise<Map<string, Claim[]>> {
  const base = `${kv.prefix}/v1/subnets/${subnet.text.replace('/', '_')}/addresses/`;
  const { entries } = await kv.range(base);
  return new Map(entries.map((e) => [e.key.slice(base.length), decodeClaims(e.value) ?? []]));
}

export function bounds(subnet: Cidr): { lo: bigint; hi: bigint } {
  return usableBounds(subnet);
}

/** Polls `check` until it holds (bounded). */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  tries = 2000,
  pauseMs = 2,
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  throw new Error(`${what}: not after ${tries} tries`);
}
