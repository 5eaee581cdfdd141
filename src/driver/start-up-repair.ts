// Reconciliation: brings the kernel in line with the records before any request is answered (and for `gc`).
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { LinkInfo } from '../kernel/link-info';
import type { Links } from '../kernel/links';
import type { DriverState } from './driver-state';
import type { HostAccessUpkeep } from './host-access-upkeep';
import type { Parents } from './parents';
import { planRepairs, type Repair } from './reconcile';

/**
 * `present`: the namespace's links, when the caller has just listed them. Re-creates parents this plugin made that are gone (a reboot removes them), marks those a crash left unmarked,
 * deletes links marked as the plugin's that nothing owns (only in this namespace: links inside containers are never
 * touched), rolls back unanswered creates, removes the temporary files of writes a crash cut short, re-makes
 * host-access shims. One log line per repair. With `dryRun`, only says what it would do.
 */
export async function repairAtStart(
  parts: { links: Links; state: DriverState; parents: Parents; upkeep: HostAccessUpkeep; log: Logger },
  dryRun: boolean,
  present?: LinkInfo[],
): Promise<Repair[]> {
  const { links, state, parents, upkeep, log } = parts;
  const networks = [...state.networks.values(), ...state.unanswered.networks];
  const endpoints = [...state.endpoints.values(), ...state.unanswered.endpoints];
  const repairs = planRepairs(present ?? (await links.list()), links.group, networks, endpoints);
  if (dryRun) return repairs;
  for (const store of [state.networkStore, state.endpointStore])
    for (const file of await store.removeUnfinishedWrites())
      log.info({ file: join(store.dir, file) }, 'removed the temporary file of a write a crash cut short');
  for (const repair of repairs) {
    if (repair.action === 'forget') {
      await (repair.record === 'network' ? state.networkStore : state.endpointStore).remove(repair.id);
      log.warn({ [repair.record]: repair.id, reason: repair.reason }, `rolled back ${repair.record}`);
      continue;
    }
    if (repair.action === 'delete') await links.delete(repair.link);
    else {
      const networkId = repair.networkId as string;
      await parents.restore(repair.link, networkId, state.networks.get(networkId)?.vlanProtocol);
    }
    log.info({ link: repair.link, action: repair.action, reason: repair.reason }, 'repaired');
  }
  state.unanswered = { networks: [], endpoints: [] };
  for (const network of state.networks.values()) if (network.hostAccess) await upkeep.repair(network.id);
  upkeep.update();
  return repairs;
}
