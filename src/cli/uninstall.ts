// `tsmacvlan uninstall`: what the plugin leaves on the host once Docker removed it (or its service is gone), removed:
// its links (found by this instance's device group, never by name), a stale socket, its claims in the cluster table
// (with --etcd), its state dir and an empty TLS dir. It refuses while anything could still need them.
// A managed plugin's state is its propagated mount, which `docker plugin rm` removes with it: what a forced removal
// leaves is links whose device group no state dir on the host has any more. --orphans deletes those, and only those
// that also carry tsmacvlan's mark (their alias): a link of a live instance, or of no instance, is never touched.
import { existsSync, lstatSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EtcdSettings } from '../cluster/etcd';
import { linkRole } from '../driver/reconcile';
import { forget } from '../inspect/cluster';
import { readState, type StateSnapshot } from '../inspect/state-snapshot';
import type { LinkInfo } from '../kernel/link-info';
import { Links } from '../kernel/links';
import { MARK_PREFIX } from '../kernel/marks';
import { instanceId, stateGroup } from '../state/instance';
import { MARKER } from '../state/migrate';
import { etcdSettings, parseCommandFlags } from './flags';
import { print } from './gc';
import { chooseInstance, DEFAULT_SOCKET, DEFAULT_STATE_DIR, type Instance, knownStateDirs } from './instance-choice';
import { socketAnswers } from './socket-probe';

export const DEFAULT_TLS_DIR = '/etc/tsmacvlan';
/** What the plugin keeps in a state dir: one of them is enough to know the directory is one. */
const STATE_ENTRIES = ['instance', MARKER, 'networks', 'endpoints', 'ipam', 'cluster'];

export interface UninstallStep {
  kind: 'link' | 'socket' | 'claim' | 'state' | 'tls';
  target: string;
  detail: string;
}

/** `uninstall --json`: what was (or, with --dry-run, would be) removed, and what was left, and why. */
export interface UninstallReport {
  version: 1;
  dryRun: boolean;
  stateDir: string;
  /** The instance id of the state dir; null when it has none (the plugin never started with it). */
  instance: string | null;
  removed: UninstallStep[];
  kept: { target: string; why: string }[];
}

interface Plan {
  report: UninstallReport;
  links: LinkInfo[];
}

export async function uninstallCommand(args: string[]): Promise<number> {
  const flags = parseCommandFlags('uninstall', args);
  const dryRun = flags.switches.has('--dry-run');
  const etcd = etcdSettings(flags);
  const where = chooseInstance(flags.values);
  const state = readState(where.stateDir);
  await refuseWhileNeeded(where, state, flags.switches.has('--force'));
  const tlsDir = flags.values.get('--tls-dir') ?? DEFAULT_TLS_DIR;
  const links = new Links(stateGroup(where.stateDir));
  const live = liveGroups([where.stateDir, ...knownStateDirs(flags.values)]);
  try {
    const plan = await planUninstall(where, state, links, { live, orphans: flags.switches.has('--orphans') }, dryRun);
    planTls(tlsDir, plan.report);
    if (etcd && plan.report.instance) await freeClaims(etcd, plan.report, dryRun);
    else if (usesCluster(where.stateDir, state) && plan.report.instance) keepClaims(plan.report);
    if (!dryRun) await carryOut(plan, links);
    print(flags.switches.has('--json'), plan.report, () => describe(plan.report));
  } finally {
    links.close();
  }
  return 0;
}

/** Throws (exit 1) while a plugin could still use what uninstall would remove. */
async function refuseWhileNeeded(where: Instance, state: StateSnapshot, force: boolean): Promise<void> {
  if (where.plugin) {
    const name = where.plugin.name;
    const remove = `remove its networks (docker network rm), then the plugin (docker plugin disable ${name} && docker plugin rm ${name})`;
    throw new Error(
      where.plugin.stateGoesWithIt
        ? `the managed plugin ${name} is still installed, and docker plugin rm removes its state (${where.stateDir}) with it: ${remove}; then uninstall --orphans deletes the links a forced removal left`
        : `the managed plugin ${name} is still installed and keeps its state in ${where.stateDir}: ${remove}, then run uninstall again`,
    );
  }
  const sockets = [where.socket];
  if (resolve(where.stateDir) === DEFAULT_STATE_DIR && where.socket !== DEFAULT_SOCKET) sockets.push(DEFAULT_SOCKET);
  for (const socket of sockets) {
    if (await socketAnswers(socket))
      throw new Error(
        `a plugin answers on ${socket}: stop it first (docker plugin disable and rm, or systemctl disable --now tsmacvlan), then run uninstall again`,
      );
  }
  if (force) return;
  if (state.unreadable.length)
    throw new Error(
      `the state in ${where.stateDir} cannot be read (${state.unreadable.map((u) => u.file).join(', ')}): it may record networks Docker still has; give --force to remove it anyway`,
    );
  const networks = state.networks.map((n) => n.id.slice(0, 12));
  const pools = state.pools.map((p) => p.poolId);
  if (networks.length || pools.length) {
    const what = [
      networks.length && `network(s) ${networks.join(', ')}`,
      pools.length && `address pool(s) ${pools.join(', ')}`,
    ].filter(Boolean);
    throw new Error(
      `the state in ${where.stateDir} still records ${what.join(' and ')}: Docker may still have them, and containers on them would lose their network. Remove them with docker network rm while the plugin runs, or give --force to remove their links anyway`,
    );
  }
}

/** The device groups of the instances whose state dirs exist: their links are never orphans. */
function liveGroups(stateDirs: string[]): Set<number> {
  return new Set(stateDirs.flatMap((dir) => stateGroup(dir) ?? []));
}

interface OrphanChoice {
  /** The groups of instances whose state is still there. */
  live: Set<number>;
  /** Whether to delete marked links of no live instance (--orphans), or only list them. */
  orphans: boolean;
}

async function planUninstall(
  where: Instance,
  state: StateSnapshot,
  links: Links,
  orphans: OrphanChoice,
  dryRun: boolean,
): Promise<Plan> {
  const id = instanceId(where.stateDir);
  const report: UninstallReport = {
    version: 1,
    dryRun,
    stateDir: where.stateDir,
    instance: id ?? null,
    removed: [],
    kept: [],
  };
  const all = await links.list();
  // Endpoints and shims before the parents they hang off; one end of a veth pair takes the other with it.
  const rank = (link: LinkInfo) => (link.kind === 'macvlan' ? 0 : link.kind === 'veth' ? 2 : 1);
  const ours = new Map<LinkInfo, string>();
  for (const link of all) {
    if (links.owns(link)) ours.set(link, linkDetail(link));
    else if (link.alias?.startsWith(MARK_PREFIX)) planOther(link, orphans, ours, report);
  }
  const doomed = [...ours.keys()].sort((a, b) => rank(a) - rank(b));
  for (const link of doomed) report.removed.push({ kind: 'link', target: link.name, detail: ours.get(link) as string });
  if (existsSync(where.socket))
    report.removed.push({
      kind: 'socket',
      target: where.socket,
      detail: 'left by a plugin that stopped without removing it',
    });
  planState(where.stateDir, state, id, report);
  return { report, links: doomed };
}

/** A link with tsmacvlan's mark that is not this instance's: another live instance's (kept), or an orphan. */
function planOther(
  link: LinkInfo,
  orphans: OrphanChoice,
  remove: Map<LinkInfo, string>,
  report: UninstallReport,
): void {
  const group = link.group ?? 0;
  if (orphans.live.has(group)) {
    report.kept.push({ target: `link ${link.name}`, why: `another instance's, whose state dir is on this host` });
    return;
  }
  if (group === 0) {
    report.kept.push({
      target: `link ${link.name}`,
      why: `its alias says tsmacvlan, but it carries no instance's device group: ip link del ${link.name} if it is no one's`,
    });
    return;
  }
  const orphan = `device group ${group}, whose instance's state is gone (a plugin removed with its networks)`;
  if (!orphans.orphans) {
    report.kept.push({ target: `link ${link.name}`, why: `${orphan}: give --orphans to delete it` });
    return;
  }
  remove.set(link, `${linkDetail(link)}; ${orphan}`);
}

function linkDetail(link: LinkInfo): string {
  const role = linkRole(link);
  return role === 'host-access shim' ? `${role}; its address and host routes go with it` : role;
}

function planState(stateDir: string, state: StateSnapshot, id: string | undefined, report: UninstallReport): void {
  if (!state.exists) {
    report.kept.push({ target: stateDir, why: 'no such directory: nothing to remove' });
    return;
  }
  if (resolve(stateDir) === '/' || !STATE_ENTRIES.some((entry) => existsSync(join(stateDir, entry))))
    throw new Error(
      `${stateDir} holds none of ${STATE_ENTRIES.join(', ')}: it is not a tsmacvlan state dir, and uninstall does not remove it`,
    );
  const counts = `${state.networks.length} network(s), ${state.endpoints.length} endpoint(s)`;
  report.removed.push({ kind: 'state', target: stateDir, detail: id ? `instance ${id}: ${counts}` : counts });
}

function planTls(tlsDir: string, report: UninstallReport): void {
  let entries: string[];
  try {
    if (!statSync(tlsDir).isDirectory()) return;
    entries = readdirSync(tlsDir);
  } catch {
    return; // no TLS dir: nothing to remove
  }
  if (entries.length === 0) report.removed.push({ kind: 'tls', target: tlsDir, detail: 'empty' });
  else
    report.kept.push({
      target: tlsDir,
      why: `it holds ${entries.join(', ')}: files you put there for etcd; remove it when nothing else uses them`,
    });
}

/** Whether this state ever used the cluster IPAM: its cluster/ dir (the intent log), or a cluster-wide pool. */
function usesCluster(stateDir: string, state: StateSnapshot): boolean {
  return existsSync(join(stateDir, 'cluster')) || state.pools.some((p) => p.poolId.endsWith(',cluster'));
}

function keepClaims(report: UninstallReport): void {
  report.kept.push({
    target: 'the cluster table',
    why: `this host used the cluster IPAM: free what instance ${report.instance} may still hold with --etcd URL here, or later from any host: tsmacvlan gc --cluster --forget-instance ${report.instance} --etcd URL`,
  });
}

/** Frees (or lists) this instance's claims; before anything else, so that a failure leaves its id to retry with. */
async function freeClaims(etcd: EtcdSettings, report: UninstallReport, dryRun: boolean): Promise<void> {
  const id = report.instance as string;
  // This host is going for good: forget its own id (gc --cluster refuses that for a host that stays).
  const freed = await forget(etcd, undefined, id, dryRun);
  for (const f of freed)
    report.removed.push({ kind: 'claim', target: `${f.address} of ${f.subnet}`, detail: `${f.kind}, ${f.ref}` });
}

async function carryOut(plan: Plan, links: Links): Promise<void> {
  for (const link of plan.links) await links.delete(link.name);
  for (const step of plan.report.removed) {
    if (step.kind === 'socket') unlinkSync(step.target);
    else if (step.kind === 'state' && !removeTree(step.target))
      throw new Error(`${step.target} holds a mount point: uninstall removed everything else in it`);
    else if (step.kind === 'tls') rmdirSync(step.target);
  }
}

/** rm -r --one-file-system: a mount inside (there should be none) is left alone, and so are the dirs above it. */
function removeTree(path: string, device = lstatSync(path).dev): boolean {
  const stat = lstatSync(path);
  if (stat.dev !== device) return false;
  if (!stat.isDirectory()) {
    unlinkSync(path);
    return true;
  }
  let all = true;
  for (const entry of readdirSync(path)) all = removeTree(join(path, entry), device) && all;
  if (all) rmdirSync(path);
  return all;
}

const VERBS: Record<UninstallStep['kind'], [string, string]> = {
  link: ['delete link', 'deleted link'],
  socket: ['remove stale socket', 'removed stale socket'],
  claim: ['free in the cluster table', 'freed in the cluster table'],
  state: ['remove state directory', 'removed state directory'],
  tls: ['remove TLS directory', 'removed TLS directory'],
};

function describe(report: UninstallReport): string[] {
  const lines = report.removed.map(
    (step) => `${VERBS[step.kind][report.dryRun ? 0 : 1]} ${step.target} (${step.detail})`,
  );
  for (const kept of report.kept) lines.push(`kept ${kept.target}: ${kept.why}`);
  if (report.removed.length === 0) lines.push('nothing of tsmacvlan left to remove');
  return lines;
}
