// Command-line flags: `--flag value` or `--flag=value`, repeatable flags, and switches; each command's flags.
import { type EtcdSettings, checkSettings } from '../cluster/etcd-settings';
import type { DoctorOptions } from '../inspect/doctor/doctor';
import type { StatusOptions } from '../inspect/status';
import { chooseInstance, DEFAULT_SOCKET, DEFAULT_STATE_DIR, WHERE_FLAGS } from './instance-choice';
import { type Command, synopsis, UsageError } from './usage';

export interface FlagSpec {
  values?: string[]; // given once; the last one counts
  lists?: string[]; // may repeat
  switches?: string[]; // no value
}

export const ETCD_FLAGS = ['--etcd', '--etcd-prefix', '--etcd-ca', '--etcd-cert', '--etcd-key'];

/** Every command's flags (`tsmacvlan COMMAND --help` and docs/cli.md describe each, but INTERNAL_FLAGS). */
export const COMMAND_FLAGS: Record<Command, FlagSpec> = {
  serve: { values: ['--socket', '--state-dir', '--log-level', '--metrics-address', ...ETCD_FLAGS] },
  doctor: { values: [...WHERE_FLAGS, '--probe-kernel', ...ETCD_FLAGS], lists: ['--parent'], switches: ['--json'] },
  status: { values: [...WHERE_FLAGS, ...ETCD_FLAGS], switches: ['--json'] },
  gc: { values: [...WHERE_FLAGS, '--forget-instance', ...ETCD_FLAGS], switches: ['--dry-run', '--cluster', '--json'] },
  uninstall: {
    values: [...WHERE_FLAGS, '--tls-dir', ...ETCD_FLAGS],
    switches: ['--dry-run', '--force', '--orphans', '--json'],
  },
};
/** Flags no person types: doctor runs itself with --probe-kernel inside a throwaway namespace. */
export const INTERNAL_FLAGS = ['--probe-kernel'];

/** A command's flags, or a UsageError with its synopsis. */
export function parseCommandFlags(command: Command, args: string[]): Flags {
  return parseFlags(args, COMMAND_FLAGS[command], synopsis(command));
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
      throw new UsageError(`unknown or incomplete argument '${flag}'`, usage);
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

export function parseStatusArgs(args: string[]): StatusOptions {
  const flags = parseCommandFlags('status', args);
  const etcd = etcdSettings(flags);
  return { ...chooseInstance(flags.values), json: flags.switches.has('--json'), ...(etcd && { etcd }) };
}

export function parseDoctorArgs(args: string[]): DoctorOptions {
  const flags = parseCommandFlags('doctor', args);
  const probeKernel = flags.values.get('--probe-kernel');
  const etcd = etcdSettings(flags);
  return {
    parents: flags.lists.get('--parent') ?? [],
    ...(probeKernel ? { socket: DEFAULT_SOCKET, stateDir: DEFAULT_STATE_DIR } : chooseInstance(flags.values)),
    json: flags.switches.has('--json'),
    ...(probeKernel && { probeKernel }),
    ...(etcd && { etcd }),
  };
}

/** The etcd connection of the cluster IPAM: flags, else the environment; undefined without --etcd. */
export function etcdSettings(flags: Flags): EtcdSettings | undefined {
  const value = (flag: string) => {
    const env = `TSMACVLAN_${flag.slice(2).toUpperCase().replace(/-/g, '_')}`;
    return flags.values.get(flag) ?? (process.env[env] || undefined);
  };
  const endpoints = value('--etcd');
  if (endpoints === undefined) {
    const stray = ETCD_FLAGS.slice(1).find((flag) => value(flag) !== undefined);
    if (stray) throw new UsageError(`${stray} needs --etcd (or TSMACVLAN_ETCD): the etcd endpoints`);
    return undefined;
  }
  const settings: EtcdSettings = { endpoints: endpoints.split(',').map((e) => e.trim()) };
  const optional = { prefix: '--etcd-prefix', ca: '--etcd-ca', cert: '--etcd-cert', key: '--etcd-key' } as const;
  for (const [field, flag] of Object.entries(optional) as [keyof typeof optional, string][]) {
    const given = value(flag);
    if (given !== undefined) settings[field] = given;
  }
  try {
    checkSettings(settings);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return settings;
}
