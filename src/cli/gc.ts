// `tsmacvlan gc`: the start-up reconciliation on its own, while the plugin is stopped; `gc --cluster
// --forget-instance ID`: what a host gone for good held in the cluster table, freed.
import pino from 'pino';
import { NetworkDriver } from '../driver/driver';
import { describeRepair, type Repair } from '../driver/reconcile';
import { forget } from '../inspect/cluster';
import { Links } from '../kernel/links';
import { crashPoint } from '../state/crash';
import { instanceId, stateGroup } from '../state/instance';
import { refuseNewerState, stateFormatOf } from '../state/migrate';
import { STATE_FILES } from '../inspect/state-formats';
import { ETCD_FLAGS, etcdSettings, parseCommandFlags } from './flags';
import { chooseInstance } from './instance-choice';
import { socketAnswers } from './socket-probe';
import { UsageError, synopsis } from './usage';

/** `gc --json`: what was (or, with --dry-run, would be) repaired. */
export interface GcReport {
  version: 1;
  dryRun: boolean;
  stateDir: string;
  /** Each repair, with `message`: the line gc prints for it. */
  repairs: (Repair & { message: string })[];
}

/** `gc --cluster --json`: the claims of the forgotten instance, freed (or, with --dry-run, that would be). */
export interface GcClusterReport {
  version: 1;
  dryRun: boolean;
  instance: string;
  freed: { subnet: string; address: string; kind: string; ref: string }[];
}

export async function gcCommand(args: string[]): Promise<number> {
  const flags = parseCommandFlags('gc', args);
  const dryRun = flags.switches.has('--dry-run');
  const json = flags.switches.has('--json');
  const id = flags.values.get('--forget-instance');
  if (flags.switches.has('--cluster')) {
    if (!id)
      throw new UsageError(
        'gc --cluster needs --forget-instance ID: the instance whose host is gone for good',
        synopsis('gc'),
      );
    const settings = etcdSettings(flags);
    if (!settings) throw new UsageError('gc --cluster needs --etcd URL[,URL...] (or TSMACVLAN_ETCD)', synopsis('gc'));
    const { stateDir } = chooseInstance(flags.values);
    const freed = await forget(settings, instanceId(stateDir), id, dryRun);
    print(json, { version: 1, dryRun, instance: id, freed } satisfies GcClusterReport, () =>
      clusterLines(freed, id, dryRun),
    );
    return 0;
  }
  if (id !== undefined) {
    throw new UsageError(
      `--forget-instance frees another host's addresses in the cluster table: type 'tsmacvlan gc --cluster --forget-instance ${id} --etcd URL' (add --dry-run to see them first)`,
      synopsis('gc'),
    );
  }
  const stray = ETCD_FLAGS.find((flag) => flags.values.has(flag));
  if (stray) throw new UsageError(`${stray} goes with gc --cluster --forget-instance ID`, synopsis('gc'));
  const { socket, stateDir } = chooseInstance(flags.values);
  if (!dryRun && (await socketAnswers(socket))) {
    throw new Error(`the plugin is running on ${socket} and repairs at its own start; stop it first, or use --dry-run`);
  }
  // gc reads older formats as they are (its only writes are removals) and leaves their migration to the plugin.
  refuseNewerState(stateDir, STATE_FILES);
  const format = stateFormatOf(stateDir, STATE_FILES);
  if (format.state === 'older' && !json) console.log(`note: the state is ${format.message}`);
  const repairs = await reconcile(stateDir, dryRun);
  const lines = () =>
    repairs.length ? repairs.map((r) => `${dryRun ? 'would ' : ''}${describeRepair(r)}`) : ['nothing to repair'];
  const report: GcReport = {
    version: 1,
    dryRun,
    stateDir,
    repairs: repairs.map((r) => ({ ...r, message: describeRepair(r) })),
  };
  print(json, report, lines);
  return 0;
}

async function reconcile(stateDir: string, dryRun: boolean): Promise<Repair[]> {
  const links = new Links(stateGroup(stateDir), () => crashPoint('link-created'));
  try {
    return await new NetworkDriver(links, stateDir, pino({ level: 'silent' })).reconcile({ dryRun });
  } finally {
    links.close();
  }
}

function clusterLines(freed: GcClusterReport['freed'], id: string, dryRun: boolean): string[] {
  const lines = freed.map(
    (f) => `${dryRun ? 'would free' : 'freed'} ${f.address} of ${f.subnet} (${f.kind}, ${f.ref})`,
  );
  lines.push(
    freed.length === 0
      ? `instance ${id} holds nothing in the cluster table`
      : `${freed.length} ${dryRun ? 'would be freed' : 'freed'}`,
  );
  return lines;
}

export function print(json: boolean, report: object, lines: () => string[]): void {
  console.log(json ? JSON.stringify(report, null, 2) : lines().join('\n'));
}
