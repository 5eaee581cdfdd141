// Operator actions on the whole cluster table, with one read of every subnet: what each instance holds (status) and
// freeing what a host that is gone for good held (gc --cluster --forget-instance). Nothing here runs on its own:
// a partitioned host may still use its addresses, so only a person decides that one is gone.
import { formatIp, parseCidr, usableBounds } from '../ip/address';
import type { ClusterKv, KvEntry } from './etcd';
import {
  type Claim,
  addressOfKey,
  addressesPrefix,
  decodeClaims,
  encodeClaims,
  subnetOfKey,
  subnetsPrefix,
} from './keys';
import { SubnetView, type SubnetSummary } from './view';

export interface Forgotten {
  subnet: string;
  address: string;
  kind: Claim['kind'];
  ref: string;
}

/** Tries per key when other hosts change it meanwhile (a shared gateway). */
const MAX_ATTEMPTS = 8;

/** Every subnet's entries, from one read. */
async function readAll(kv: ClusterKv): Promise<Map<string, KvEntry[]>> {
  const { entries } = await kv.range(subnetsPrefix(kv.prefix));
  const bySubnet = new Map<string, KvEntry[]>();
  for (const entry of entries) {
    const subnet = subnetOfKey(kv.prefix, entry.key);
    if (!subnet) continue;
    if (!bySubnet.has(subnet)) bySubnet.set(subnet, []);
    bySubnet.get(subnet)!.push(entry);
  }
  return bySubnet;
}

/** Every subnet's view, from one read of the whole table. */
export async function readViews(kv: ClusterKv): Promise<SubnetView[]> {
  const views: SubnetView[] = [];
  for (const [subnet, entries] of await readAll(kv)) {
    const parsed = parseCidr(subnet);
    if (!parsed.ok) continue;
    const view = new SubnetView(parsed.cidr, kv.prefix);
    view.load(entries, 0n);
    views.push(view);
  }
  return views;
}

/** Per subnet (one view each): who holds how many addresses, and how many of the subnet's addresses are free. */
export function clusterSummary(views: SubnetView[]): SubnetSummary[] {
  return views.map((view) => {
    const { lo, hi } = usableBounds(view.subnet);
    return view.summary(lo, hi);
  });
}

/**
 * Lists (dryRun) or frees every claim of instance `id`. Each key is rewritten only if unchanged since it was read,
 * so a claim another host adds meanwhile is kept. Refuses to forget `self`: that instance is alive.
 */
export async function forgetInstance(kv: ClusterKv, self: string, id: string, dryRun: boolean): Promise<Forgotten[]> {
  if (id === self) {
    throw new Error(
      `instance ${id} is this host: forget an instance only once its host is gone for good, from another host`,
    );
  }
  const forgotten: Forgotten[] = [];
  for (const [subnet, entries] of await readAll(kv)) {
    const parsed = parseCidr(subnet);
    if (!parsed.ok) continue;
    const prefix = addressesPrefix(kv.prefix, parsed.cidr);
    for (const entry of entries) {
      const address = addressOfKey(prefix, parsed.cidr, entry.key);
      const claims = decodeClaims(entry.value);
      if (address === undefined || !claims?.some((c) => c.owner === id)) continue;
      const text = formatIp(parsed.cidr.v6, address);
      for (const c of claims) if (c.owner === id) forgotten.push({ subnet, address: text, kind: c.kind, ref: c.ref });
      if (!dryRun) await dropOwner(kv, entry, id);
    }
  }
  return forgotten;
}

async function dropOwner(kv: ClusterKv, entry: KvEntry, id: string): Promise<void> {
  let current: KvEntry | undefined = entry;
  for (let attempt = 0; attempt < MAX_ATTEMPTS && current; attempt++) {
    const claims = decodeClaims(current.value);
    if (!claims?.some((c) => c.owner === id)) return;
    const kept = claims.filter((c) => c.owner !== id);
    const result = await kv.replace(current.key, current.modRevision, kept.length > 0 ? encodeClaims(kept) : undefined);
    if (result.ok) return;
    current = result.current;
  }
  if (current) throw new Error(`${current.key} changed under each of ${MAX_ATTEMPTS} tries; run the command again`);
}
