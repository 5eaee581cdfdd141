// `tsmacvlan doctor`: checks that this host can run the plugin, one line per check (OK / WARN / FAIL) with what to do.
// Read-only on the host: the kernel is tested in a throwaway network namespace, state files are read directly.
import { readFileSync } from 'node:fs';
import { Links } from '../../kernel/links';
import { readState } from '../state-snapshot';
import { stateGroup } from '../../state/instance';
import { Check, CheckStatus, DoctorReport } from './check';
import { KernelProbe, kernelChecks, probeKernel, runKernelProbe } from './kernel-probe';
import { HostFacts, ipvlanUsers, ParentUse, parentCheck, vlanUsers } from './parents';
import { privilegesCheck } from './privileges';
import { pluginVersion, socketCheck } from './socket';
import { pluginCheck, versionCheck } from './plugin';
import type { ManagedPlugin } from '../managed-plugins';
import { VERSION } from '../../version';
import { driftChecks, slaacChecks, stateCheck } from './state';
import { poolPrefixChecks } from './pool-prefixes';
import type { EtcdSettings } from '../../cluster/etcd';
import { etcdChecks } from '../cluster';
export interface DoctorOptions {
  parents: string[];
  socket: string;
  stateDir: string;
  json: boolean;
  /** The managed plugin whose socket and state dir these are (found in Docker's plugin store). */
  plugin?: ManagedPlugin;
  /** How the CLI chose the socket and state dir, in a sentence. */
  found?: string;
  /** The cluster table's etcd (--etcd): its reachability, quorum and round trip are checked too. */
  etcd?: EtcdSettings;
  /** Internal: run the kernel probe (in the namespace `unshare` made) and print its JSON; the value is doctor's own namespace. */
  probeKernel?: string;
}

export function hostFacts(): HostFacts {
  let hypervisor = false;
  try {
    hypervisor = /^flags\s*:.*\bhypervisor\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    hypervisor = false;
  }
  return { sysfs: '/sys', hypervisor };
}

/** Every check, in order. */
export async function diagnose(
  options: DoctorOptions,
  links: Links,
  probe: KernelProbe | { error: string },
  facts = hostFacts(),
): Promise<DoctorReport> {
  const state = readState(options.stateDir);
  const uses = new Map<string, ParentUse>();
  for (const name of options.parents) uses.set(name, { given: true, networks: [] });
  for (const network of [...state.networks].sort((a, b) => a.parent.localeCompare(b.parent))) {
    const use = uses.get(network.parent) ?? { given: false, networks: [] };
    use.networks.push(network);
    uses.set(network.parent, use);
  }
  const checks: Check[] = [privilegesCheck(readFileSync('/proc/self/status', 'utf8'))];
  checks.push(...kernelChecks(probe, await vlanUsers(uses, links), ipvlanUsers(uses)));
  const vlanSupport = 'error' in probe || !probe.vlan ? undefined : probe.vlan.ok;
  for (const [name, use] of uses) checks.push(await parentCheck(name, use, links, facts, vlanSupport));

  if (options.plugin) checks.push(pluginCheck(options.plugin, options.found));
  const socket = await socketCheck(options.socket, {
    ...(options.plugin && { start: `enable the plugin: docker plugin enable ${options.plugin.name}` }),
    ...(!options.plugin && options.found?.startsWith('no ') && { found: options.found }),
  });
  checks.push(socket);
  if (socket.status === 'OK') checks.push(versionCheck(await pluginVersion(options.socket)));
  checks.push(stateCheck(state, socket.status === 'OK'));
  // The instance the socket names: its device group marks its links.
  if (state.unreadable.length === 0)
    checks.push(...driftChecks(state, await links.list(), stateGroup(options.stateDir)));
  checks.push(...slaacChecks(state), ...poolPrefixChecks(state));
  if (options.etcd) checks.push(...(await etcdChecks(options.etcd)));
  return { version: 1, tsmacvlanVersion: VERSION, ok: !checks.some((c) => c.status === 'FAIL'), checks };
}

export function formatDoctor(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.id.length));
  const lines: string[] = [];
  for (const check of report.checks) {
    lines.push(`${check.status.padEnd(4)}  ${check.id.padEnd(width)}  ${check.message}`);
    if (check.fix) lines.push(`${' '.repeat(6 + width)}  fix: ${check.fix}`);
  }
  const count = (s: CheckStatus) => report.checks.filter((c) => c.status === s).length;
  lines.push(
    '',
    `${count('FAIL')} FAIL, ${count('WARN')} WARN, ${count('OK')} OK (tsmacvlan ${report.tsmacvlanVersion})`,
  );
  return lines.join('\n');
}

/** Prints the checks; 0 when nothing FAILs, 1 otherwise. */
export async function doctor(options: DoctorOptions): Promise<number> {
  if (options.probeKernel) {
    console.log(JSON.stringify(await probeKernel(options.probeKernel)));
    return 0;
  }
  const probe = await runKernelProbe();
  const links = new Links();
  try {
    const report = await diagnose(options, links, probe);
    console.log(options.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
    return report.ok ? 0 : 1;
  } finally {
    links.close();
  }
}
