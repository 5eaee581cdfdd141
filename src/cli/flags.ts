// Command-line flags: `--flag value` or `--flag=value`, repeatable flags, and switches; each command's flags.
import { type EtcdSettings, checkSettings } from '../cluster/etcd';
import type { DoctorOptions } from '../inspect/doctor/doctor';
import type { StatusOptions } from '../inspect/status';

export const DEFAULT_SOCKET = '/run/docker/plugins/tsmacvlan.sock';
export const DEFAULT_STATE_DIR = '/var/lib/tsmacvlan';

export interface FlagSpec {
  values?: string[]; // given once; the last one counts
  lists?: string[]; // may repeat
  switches?: string[]; // no value
}

export interface Flags {
  values: Map<string, string>;
  lists: Map<string, string[]>;
  switches: Set<string>;
}

export function parseFlags(args: string[], spec: FlagSpec, usage: string): Flags {
  const flags: Flags = { values: new Map(), lists: new Map(), switches: new Set() };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    if (spec.switches?.includes(flag) && inline === undefined) {
      flags.switches.add(flag);
      continue;
    }
    const value = inline ?? args[i + 1];
    const isValue = spec.values?.includes(flag);
    if ((!isValue && !spec.lists?.includes(flag)) || value === undefined)
      throw new Error(`unknown or incomplete argument '${flag}'\n${usage}`);
    if (inline === undefined) i++;
    if (isValue) flags.values.set(flag, value);
    else flags.lists.set(flag, [...(flags.lists.get(flag) ?? []), value]);
  }
  return flags;
}

/** Where the plugin listens and keeps its state: flags, else the environment, else the defaults. */
export function location(flags: Flags): { socket: string; stateDir: string } {
  return {
    socket: flags.values.get('--socket') ?? (process.env.TSMACVLAN_SOCKET || DEFAULT_SOCKET),
    stateDir: flags.values.get('--state-dir') ?? (process.env.TSMACVLAN_STATE_DIR || DEFAULT_STATE_DIR),
  };
}

export function parseStatusArgs(args: string[], usage: string): StatusOptions {
  const flags = parseFlags(args, { values: ['--socket', '--state-dir', ...ETCD_FLAGS], switches: ['--json'] }, usage);
  const etcd = etcdSettings(flags);
  return { ...location(flags), json: flags.switches.has('--json'), ...(etcd && { etcd }) };
}

export function parseDoctorArgs(args: string[], usage: string): DoctorOptions {
  const flags = parseFlags(
    args,
    { values: ['--socket', '--state-dir', '--probe-kernel', ...ETCD_FLAGS], lists: ['--parent'], switches: ['--json'] },
    usage,
  );
  const probeKernel = flags.values.get('--probe-kernel');
  const etcd = etcdSettings(flags);
  return {
    parents: flags.lists.get('--parent') ?? [],
    ...location(flags),
    json: flags.switches.has('--json'),
    ...(probeKernel && { probeKernel }),
    ...(etcd && { etcd }),
  };
}

export const ETCD_FLAGS = ['--etcd', '--etcd-prefix', '--etcd-ca', '--etcd-cert', '--etcd-key'];

/** The etcd connection of the cluster IPAM: flags, else the environment; undefined without --etcd. */
export function etcdSettings(flags: Flags): EtcdSettings | undefined {
  const value = (flag: string) => {
    const env = `TSMACVLAN_${flag.slice(2).toUpperCase().replace(/-/g, '_')}`;
    return flags.values.get(flag) ?? (process.env[env] || undefined);
  };
  const endpoints = value('--etcd');
  if (endpoints === undefined) {
    const stray = ETCD_FLAGS.slice(1).find((flag) => value(flag) !== undefined);
    if (stray) throw new Error(`${stray} needs --etcd (or TSMACVLAN_ETCD): the etcd endpoints`);
    return undefined;
  }
  const settings: EtcdSettings = { endpoints: endpoints.split(',').map((e) => e.trim()) };
  const optional = { prefix: '--etcd-prefix', ca: '--etcd-ca', cert: '--etcd-cert', key: '--etcd-key' } as const;
  for (const [field, flag] of Object.entries(optional) as [keyof typeof optional, string][]) {
    const given = value(flag);
    if (given !== undefined) settings[field] = given;
  }
  checkSettings(settings);
  return settings;
}
