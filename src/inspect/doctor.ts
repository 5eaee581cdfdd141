// `tsmacvlan doctor`: checks that this host can run the plugin, one line per check (OK / WARN / FAIL) with what to do.
// Read-only on the host: the kernel is tested in a throwaway network namespace, state files are read directly.
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { Links } from '../kernel/links';
import type { NetworkRecord } from '../driver/network-options';
import { internalParentName } from '../driver/parents';
import { GC_ADVICE, findDrift } from './drift';
import { readState, type StateSnapshot } from './state-snapshot';
import { stateGroup } from '../state/instance';
import { driverName } from './driver-name';
import { KernelError } from '../kernel/errors';
import { sysfsFacts } from '../kernel/sysfs';
import { type LinkInfo, type LinkDetails } from '../kernel/link-info';
import { MARK_PROBE } from '../kernel/marks';

export type CheckStatus = 'OK' | 'WARN' | 'FAIL';

export interface Check {
  /** Stable: `privileges`, `kernel.macvlan`, `kernel.8021q`, `parent:<name>`, `socket`, `state`, `drift` or `drift:<link or id>`. */
  id: string;
  status: CheckStatus;
  message: string;
  /** What to do; present on every WARN and FAIL. */
  fix?: string;
}

export interface DoctorReport {
  version: 1;
  /** No check FAILed (the exit code is 0 exactly then). */
  ok: boolean;
  checks: Check[];
}

const nonEmpty = { type: 'string', minLength: 1 } as const;

/** The schema of `tsmacvlan doctor --json` (JSON Schema draft-07). Not expressible in it: `ok` is true iff no check is FAIL. */
export const DOCTOR_JSON_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'tsmacvlan doctor',
  type: 'object',
  required: ['version', 'ok', 'checks'],
  additionalProperties: false,
  properties: {
    version: { const: 1 },
    ok: { type: 'boolean' },
    checks: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['id', 'status', 'message'],
        additionalProperties: false,
        properties: {
          id: {
            type: 'string',
            pattern: '^(privileges|kernel\\.macvlan|kernel\\.8021q|socket|state|drift|parent:\\S+|drift:\\S+)$',
          },
          status: { enum: ['OK', 'WARN', 'FAIL'] },
          message: nonEmpty,
          fix: nonEmpty,
        },
        if: { properties: { status: { enum: ['WARN', 'FAIL'] } } },
        then: { required: ['fix'] },
      },
    },
  },
} as const;

const RANK: Record<CheckStatus, number> = { OK: 0, WARN: 1, FAIL: 2 };

// ---- privileges ----

const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;

/** The effective capability set from /proc/<pid>/status text (CapEff, hex). */
export function parseCapEff(procStatus: string): bigint {
  const hex = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(procStatus)?.[1];
  return hex ? BigInt(`0x${hex}`) : 0n;
}

export function privilegesCheck(procStatus: string): Check {
  const caps = parseCapEff(procStatus);
  const uid = /^Uid:\s*\d+\s+(\d+)/m.exec(procStatus)?.[1] ?? '?'; // the effective uid
  const has = (bit: bigint) => (caps & (1n << bit)) !== 0n;
  const id = 'privileges';
  if (!has(CAP_NET_ADMIN)) {
    return {
      id,
      status: 'FAIL',
      message: `running as uid ${uid} without CAP_NET_ADMIN: the plugin could not create links, and doctor cannot test the kernel or read the state`,
      fix: 'run the plugin and doctor as root (sudo tsmacvlan doctor)',
    };
  }
  if (!has(CAP_SYS_ADMIN)) {
    return {
      id,
      status: 'WARN',
      message: `running as uid ${uid} with CAP_NET_ADMIN but without CAP_SYS_ADMIN: doctor cannot make the throwaway network namespace it tests the kernel in`,
      fix: 'run doctor as root (sudo tsmacvlan doctor)',
    };
  }
  return {
    id,
    status: 'OK',
    message: `running as uid ${uid} with CAP_NET_ADMIN (and CAP_SYS_ADMIN, for the kernel test)`,
  };
}

// ---- kernel support ----

export interface ProbeResult {
  ok: boolean;
  errno?: string;
}

/** What `doctor --probe-kernel` prints: the link it made to hang things on, and whether macvlan and VLAN links could be made (null: not tried). */
export interface KernelProbe {
  lower: 'veth' | 'dummy' | null;
  lowerErrno?: string;
  macvlan: ProbeResult | null;
  vlan: ProbeResult | null;
}

function errnoName(err: unknown): string {
  return err instanceof KernelError ? err.errno : err instanceof Error ? err.message : String(err);
}

async function attempt(create: () => Promise<void>, remove: () => Promise<unknown>): Promise<ProbeResult> {
  try {
    await create();
  } catch (err) {
    return { ok: false, errno: errnoName(err) };
  }
  try {
    await remove();
  } catch (err) {
    return { ok: false, errno: `created, but could not delete it: ${errnoName(err)}` };
  }
  return { ok: true };
}

/** Kinds of the fallback devices (tunl0, sit0, gre0...) the kernel puts in every new namespace once their module is loaded. */
const FALLBACK_TUNNELS = new Set([
  'ipip',
  'sit',
  'ip6tnl',
  'gre',
  'gretap',
  'erspan',
  'ip6gre',
  'ip6gretap',
  'ip6erspan',
  'vti',
  'vti6',
]);

/**
 * The kernel test itself, run by `doctor --probe-kernel=<outer netns>` in the throwaway namespace `unshare --net` made.
 * It refuses to run anywhere but a fresh namespace (not doctor's own, and holding nothing but `lo` and the kernel's
 * fallback tunnels, all down), so it can never create links on the host; and it deletes what it made, although the
 * namespace's end would.
 */
export async function probeKernel(outerNetns: string): Promise<KernelProbe> {
  const here = readlinkSync('/proc/self/ns/net');
  const refuse = (why: string) =>
    new Error(`refusing to probe the kernel: ${why}; 'tsmacvlan doctor' runs the probe itself, under 'unshare --net'`);
  if (here === outerNetns) throw refuse(`this is the namespace doctor runs in (${here})`);
  const links = new Links();
  try {
    const others = (await links.list())
      .filter((l) => !l.loopback && !(FALLBACK_TUNNELS.has(l.kind ?? '') && !l.up))
      .map((l) => l.name);
    if (others.length) throw refuse(`this network namespace is not a fresh one (it has ${others.join(', ')})`);
    // The namespace is new and empty: these names cannot clash with anything, and everything dies with it.
    let lower: KernelProbe['lower'] = null;
    let lowerErrno: string | undefined;
    try {
      await links.createVethPair('probe0', 'probe1', MARK_PROBE);
      lower = 'veth';
    } catch (err) {
      lowerErrno = errnoName(err);
      try {
        await links.createDummy('probe0', MARK_PROBE);
        lower = 'dummy';
      } catch {
        // neither: nothing to hang a macvlan or a VLAN on
      }
    }
    const base = lower ? await links.get('probe0') : undefined;
    if (!base) return { lower: null, ...(lowerErrno && { lowerErrno }), macvlan: null, vlan: null };
    try {
      const macvlan = await attempt(
        () => links.createMacvlan({ name: 'probemv', parentIndex: base.index, mode: 'bridge' }, MARK_PROBE),
        () => links.delete('probemv'),
      );
      const vlan = await attempt(
        () => links.createVlan('probe0.10', base.index, 10, '802.1q', MARK_PROBE),
        () => links.delete('probe0.10'),
      );
      return { lower, macvlan, vlan };
    } finally {
      await links.delete('probe0').catch(() => undefined); // a veth's peer goes with it
    }
  } finally {
    links.close();
  }
}

/**
 * Runs the probe in a throwaway network namespace and returns what it found.
 * Why a child process under `unshare --net`: Node cannot unshare(2) or setns(2) itself, and the probe must not touch
 * the host's namespace (creating test links there, even briefly, is a change on the host, and one a crash could
 * leave behind). A namespace made by `unshare --net` lives exactly as long as the child: the kernel destroys it, and
 * every link in it, when the child exits, even if it is killed, so nothing is ever left to clean up. The alternatives
 * are worse: `ip netns add` leaves a named namespace behind on a crash; creating links into another namespace by
 * IFLA_NET_NS_PID still needs a child process to hold that namespace, plus netnsid bookkeeping for every later call.
 * util-linux's unshare is on every Debian; the child is this CLI (`doctor --probe-kernel`), never the daemon, which
 * spawns nothing. Creating a macvlan or VLAN link may autoload its kernel module, exactly as the plugin's would.
 */
export function runKernelProbe(
  cli = join(__dirname, '../cli/main.js'),
  timeoutMs = 60_000,
): Promise<KernelProbe | { error: string }> {
  const outer = readlinkSync('/proc/self/ns/net');
  return new Promise((resolve) => {
    execFile(
      'unshare',
      ['--net', '--', process.execPath, cli, 'doctor', `--probe-kernel=${outer}`],
      { timeout: timeoutMs, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const why =
            (err as NodeJS.ErrnoException).code === 'ENOENT'
              ? `'unshare' (util-linux) is not installed`
              : (stderr.trim() || err.message).split('\n')[0];
          resolve({ error: why });
          return;
        }
        try {
          resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as KernelProbe);
        } catch {
          resolve({ error: `the probe printed no result: ${(stdout + stderr).trim().slice(0, 200)}` });
        }
      },
    );
  });
}

const NOT_SUPPORTED = new Set(['EOPNOTSUPP', 'ENOTSUP']);

export function kernelChecks(probe: KernelProbe | { error: string }): Check[] {
  const where = 'tried in a throwaway network namespace';
  if ('error' in probe) {
    const fix =
      'run doctor as root with util-linux installed, so it can test the kernel in a throwaway network namespace';
    return [
      { id: 'kernel.macvlan', status: 'WARN', message: `could not test macvlan support: ${probe.error}`, fix },
      { id: 'kernel.8021q', status: 'WARN', message: `could not test 802.1q VLAN support: ${probe.error}`, fix },
    ];
  }
  if (!probe.lower || !probe.macvlan || !probe.vlan) {
    const message = `could not test: this kernel has neither veth nor dummy links (${probe.lowerErrno ?? 'unknown error'}), so doctor has no link to hang a test link on`;
    const fix =
      'load veth (modprobe veth) and run doctor again, or create a network on a spare interface to see whether it works';
    return [
      { id: 'kernel.macvlan', status: 'WARN', message, fix },
      { id: 'kernel.8021q', status: 'WARN', message, fix },
    ];
  }
  const macvlan: Check = probe.macvlan.ok
    ? { id: 'kernel.macvlan', status: 'OK', message: `the kernel creates and deletes macvlan links (${where})` }
    : {
        id: 'kernel.macvlan',
        status: 'FAIL',
        message: `the kernel cannot create macvlan links (${probe.macvlan.errno}, ${where}): the plugin cannot work on this kernel`,
        fix: NOT_SUPPORTED.has(probe.macvlan.errno ?? '')
          ? `load the module: modprobe macvlan; if it is not found, install your kernel's full module package (e.g. linux-modules-extra-$(uname -r) on Ubuntu) or use a kernel built with CONFIG_MACVLAN`
          : `the kernel refused for another reason (${probe.macvlan.errno}); check 'dmesg'`,
      };
  const vlan: Check = probe.vlan.ok
    ? { id: 'kernel.8021q', status: 'OK', message: `the kernel creates and deletes 802.1q VLAN links (${where})` }
    : {
        id: 'kernel.8021q',
        status: 'FAIL',
        message: `the kernel cannot create 802.1q VLAN links (${probe.vlan.errno}, ${where}): networks with -o parent=<interface>.<vlan id> cannot be created`,
        fix: NOT_SUPPORTED.has(probe.vlan.errno ?? '')
          ? `load 802.1q support: modprobe 8021q (at every boot: echo 8021q > /etc/modules-load.d/8021q.conf); if the module is not found, this kernel was built without CONFIG_VLAN_8021Q: install one with it. Networks on plain interfaces do not need it`
          : `the kernel refused for another reason (${probe.vlan.errno}); check 'dmesg'`,
      };
  return [macvlan, vlan];
}

// ---- parents ----

export interface HostFacts {
  /** Root of sysfs, for the driver of a link. */
  sysfs: string;
  /** The CPU reports a hypervisor (the `hypervisor` flag in /proc/cpuinfo): we are a VM. */
  hypervisor: boolean;
}

/** NIC drivers of virtual machines, and what to allow on the hypervisor so frames from the containers' MACs pass. */
const VM_NICS: Record<string, { vmOnly: boolean; advice: string }> = {
  virtio_net: {
    vmOnly: true,
    advice:
      'KVM/QEMU (Proxmox, libvirt, clouds): on a Linux bridge on the host this usually works; with Open vSwitch, OpenStack port security or a public cloud (AWS, GCP, Azure) frames from MACs the VM was not given are dropped: allow them (e.g. disable port security, or add allowed address pairs) or use a network the provider routes',
  },
  vmxnet3: {
    vmOnly: true,
    advice:
      'VMware: set Promiscuous mode, MAC address changes and Forged transmits to Accept on the port group (or enable MAC learning on a distributed switch)',
  },
  hv_netvsc: {
    vmOnly: true,
    advice:
      "Hyper-V: enable MAC address spoofing on the VM's network adapter (Set-VMNetworkAdapter -VMName <vm> -MacAddressSpoofing On); Azure drops such frames",
  },
  e1000: {
    vmOnly: false,
    advice:
      'VMware: set Promiscuous mode, MAC address changes and Forged transmits to Accept on the port group; VirtualBox: set Promiscuous Mode to Allow All on the adapter',
  },
  e1000e: {
    vmOnly: false,
    advice:
      'VMware: set Promiscuous mode, MAC address changes and Forged transmits to Accept on the port group; VirtualBox: set Promiscuous Mode to Allow All on the adapter',
  },
};

interface Finding {
  status: CheckStatus;
  text: string;
  fix?: string;
}

/** What a parent is for: named with --parent, and/or the parent of recorded networks. */
export interface ParentUse {
  given: boolean;
  networks: NetworkRecord[];
}

/** Findings about an existing link as a macvlan parent. */
async function linkFindings(link: LinkDetails, use: ParentUse, links: Links, facts: HostFacts): Promise<Finding[]> {
  const findings: Finding[] = [];
  const name = link.name;
  if (link.loopback) {
    return [
      {
        status: 'FAIL',
        text: 'is the loopback interface',
        fix: 'use an Ethernet interface, such as eth1, as the parent',
      },
    ];
  }
  if (!link.up) {
    findings.push({
      status: 'FAIL',
      text: 'is down: containers on it are cut off',
      fix: `bring it up: ip link set ${name} up (and in the host's network configuration, so it stays up)`,
    });
  } else if (!link.carrier) {
    findings.push({
      status: 'WARN',
      text: `is up but has no carrier (${link.operstate}): nothing passes through it`,
      fix: `connect it: cable plugged in, switch port enabled, or the VM's virtual NIC connected`,
    });
  } else {
    findings.push({ status: 'OK', text: 'is up, with carrier' });
  }

  let all: LinkInfo[] | undefined;
  const byIndex = async (index: number) => (all ??= await links.list()).find((l) => l.index === index);
  if (link.masterIndex !== undefined) {
    const master = (await byIndex(link.masterIndex))?.name ?? `link ${link.masterIndex}`;
    const kind = link.slaveKind ?? 'master';
    if (['bridge', 'bond', 'team', 'openvswitch'].includes(kind)) {
      findings.push({
        status: 'FAIL',
        text: `is a port of ${kind} '${master}': the ${kind} takes its traffic, and the kernel refuses macvlans on it (EBUSY)`,
        fix: `use '${master}' itself as the parent (-o parent=${master})`,
      });
    } else {
      findings.push({
        status: 'WARN',
        text: `is enslaved to ${kind} '${master}'`,
        fix: `make sure traffic of '${master}' is meant to carry containers, or use another interface`,
      });
    }
  }

  findings.push({ status: 'OK', text: `MTU ${link.mtu}` });
  for (const network of use.networks) {
    if (network.mtu !== undefined && network.mtu > link.mtu) {
      findings.push({
        status: 'FAIL',
        text: `network ${network.id.slice(0, 12)} asks for MTU ${network.mtu}, more than its ${link.mtu}: containers cannot join it`,
        fix: `raise the MTU (ip link set ${name} mtu ${network.mtu}) or recreate the network with -o mtu=${link.mtu} or less`,
      });
    }
  }

  // The NIC under a VLAN is the one the hypervisor sees.
  const physical =
    link.kind === 'vlan' && link.parentIndex !== undefined ? ((await byIndex(link.parentIndex)) ?? link) : link;
  if (physical !== link) findings.push({ status: 'OK', text: `VLAN ${link.vlanId ?? '?'} on ${physical.name}` });
  const sys = sysfsFacts(physical, facts.sysfs);
  if (sys?.driver) {
    const vm = VM_NICS[sys.driver];
    if (vm && (vm.vmOnly || facts.hypervisor)) {
      findings.push({
        status: 'WARN',
        text: `${physical === link ? 'is' : `its NIC ${physical.name} is`} a virtual machine's NIC (driver ${sys.driver}): the hypervisor may drop frames to and from the containers' own MACs`,
        fix: `allow promiscuous mode, MAC address changes / MAC spoofing and forged transmits for this NIC on the hypervisor. ${vm.advice}`,
      });
    } else {
      findings.push({ status: 'OK', text: `driver ${sys.driver}` });
    }
  }
  if (sys?.wireless) {
    findings.push({
      status: 'WARN',
      text: `${physical === link ? 'is' : `its NIC ${physical.name} is`} a wireless interface: access points drop frames from MACs that did not associate`,
      fix: 'use a wired interface as the parent',
    });
  }
  return findings;
}

function vlanName(name: string): { base: string; vid: number } | undefined {
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const vid = name.slice(dot + 1);
  if (!/^\d+$/.test(vid) || Number(vid) < 1 || Number(vid) > 4094) return undefined;
  return { base: name.slice(0, dot), vid: Number(vid) };
}

function usedBy(use: ParentUse): string {
  return use.networks.length ? `network(s) ${use.networks.map((n) => n.id.slice(0, 12)).join(', ')}` : '';
}

/** Findings about a parent that does not exist. */
async function missingFindings(
  name: string,
  use: ParentUse,
  links: Links,
  facts: HostFacts,
  vlanSupport: boolean | undefined,
): Promise<Finding[]> {
  const users = usedBy(use);
  if (use.networks.length && use.networks.every((n) => n.parent === internalParentName(n.id))) {
    return [
      {
        status: 'WARN',
        text: `internal parent of ${users} does not exist; the plugin re-creates it at start`,
        fix: GC_ADVICE,
      },
    ];
  }
  const vlan = vlanName(name);
  if (vlan && use.networks.every((n) => n.ownsParent)) {
    const base = await links.details(vlan.base);
    if (!base) {
      return [
        {
          status: 'FAIL',
          text: `does not exist, nor does '${vlan.base}', the interface VLAN ${vlan.vid} would be created on`,
          fix: `name an existing interface: -o parent=<interface>.${vlan.vid}`,
        },
      ];
    }
    const findings: Finding[] = use.networks.length
      ? [
          {
            status: 'WARN',
            text: `VLAN parent of ${users} does not exist; the plugin re-creates it on '${vlan.base}' at start`,
            fix: GC_ADVICE,
          },
        ]
      : [
          {
            status: 'OK',
            text: `does not exist yet: the plugin creates it as VLAN ${vlan.vid} on '${vlan.base}' for the first network that names it`,
          },
        ];
    if (vlanSupport === false) {
      findings.push({
        status: 'FAIL',
        text: 'but this kernel cannot create VLAN links (see kernel.8021q)',
        fix: 'modprobe 8021q',
      });
    }
    const baseFindings = await linkFindings(base, { given: use.given, networks: [] }, links, facts);
    baseFindings[0] = { ...baseFindings[0], text: `${vlan.base} ${baseFindings[0].text}` };
    return [...findings, ...baseFindings];
  }
  return [
    {
      status: 'FAIL',
      text: `does not exist${users ? `, yet ${users} use it: containers cannot join them` : ''}`,
      fix: users
        ? `bring '${name}' back under that name, or remove the network(s) (docker network rm) and create them again on an existing interface`
        : `name an interface listed by 'ip link', or <interface>.<vlan id> for a VLAN the plugin creates`,
    },
  ];
}

export async function parentCheck(
  name: string,
  use: ParentUse,
  links: Links,
  facts: HostFacts,
  vlanSupport?: boolean,
): Promise<Check> {
  const link = await links.details(name);
  const findings = link
    ? await linkFindings(link, use, links, facts)
    : await missingFindings(name, use, links, facts, vlanSupport);
  if (link && use.networks.length) findings.push({ status: 'OK', text: `used by ${usedBy(use)}` });
  const status = findings.reduce<CheckStatus>((worst, f) => (RANK[f.status] > RANK[worst] ? f.status : worst), 'OK');
  const fixes = findings.filter((f) => f.fix && f.status !== 'OK').map((f) => f.fix as string);
  return {
    id: `parent:${name}`,
    status,
    message: `${name}: ${findings.map((f) => f.text).join('; ')}`,
    ...(fixes.length && { fix: fixes.join('; ') }),
  };
}

// ---- plugin socket ----

interface Answer {
  status?: number;
  body?: string;
  error?: NodeJS.ErrnoException;
  timedOut?: boolean;
}

function activate(socketPath: string, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request(
      { socketPath, path: '/Plugin.Activate', method: 'POST', headers: { 'content-length': 0 }, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (error) => resolve({ error }));
      },
    );
    req.on('timeout', () => {
      req.destroy();
      resolve({ timedOut: true });
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error }));
    req.end();
  });
}

export async function socketCheck(path: string, timeoutMs = 2000): Promise<Check> {
  const id = 'socket';
  const start = `start the plugin: tsmacvlan serve --socket ${path} (or its service); if it runs with another --socket, give doctor that one`;
  try {
    if (!statSync(path).isSocket())
      return { id, status: 'FAIL', message: `${path} exists but is not a socket`, fix: `remove it, then ${start}` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      return { id, status: 'FAIL', message: `no plugin socket at ${path}: the plugin is not running`, fix: start };
    return { id, status: 'FAIL', message: `cannot look at ${path} (${code})`, fix: 'run doctor as root' };
  }
  const answer = await activate(path, timeoutMs);
  if (answer.timedOut) {
    return {
      id,
      status: 'FAIL',
      message: `${path}: the plugin did not answer Plugin.Activate within ${timeoutMs} ms`,
      fix: 'it is stuck: look at its log, then restart it',
    };
  }
  if (answer.error) {
    const code = answer.error.code;
    if (code === 'ECONNREFUSED') {
      return {
        id,
        status: 'FAIL',
        message: `${path}: nothing listens on it (left by a plugin that stopped without cleaning up)`,
        fix: `${start}; it replaces the stale socket`,
      };
    }
    if (code === 'EACCES')
      return {
        id,
        status: 'FAIL',
        message: `${path}: permission denied (the socket is root's only)`,
        fix: 'run doctor as root',
      };
    return {
      id,
      status: 'FAIL',
      message: `${path}: Plugin.Activate failed (${code ?? answer.error.message})`,
      fix: "look at the plugin's log, then restart it",
    };
  }
  let implemented: unknown;
  try {
    implemented = (JSON.parse(answer.body ?? '') as { Implements?: unknown }).Implements;
  } catch {
    implemented = undefined;
  }
  if (answer.status !== 200 || !Array.isArray(implemented) || !implemented.includes('NetworkDriver')) {
    return {
      id,
      status: 'FAIL',
      message: `${path} answered Plugin.Activate with ${answer.status} ${JSON.stringify(answer.body ?? '').slice(0, 120)}, not as a network driver`,
      fix: `another program owns ${path}: stop it or give tsmacvlan another --socket`,
    };
  }
  const driver = driverName(path);
  const outside =
    dirname(path) !== '/run/docker/plugins'
      ? ` (outside /run/docker/plugins: Docker finds it only through a spec file in /etc/docker/plugins)`
      : '';
  return {
    id,
    status: 'OK',
    message: `${path} answers Plugin.Activate (${implemented.join(', ')}); Docker's driver name for it is '${driver}'${outside}`,
  };
}

// ---- state ----

export function stateCheck(state: StateSnapshot, pluginAnswers: boolean): Check {
  const id = 'state';
  if (state.unreadable.length) {
    const denied = state.unreadable.some((u) => /EACCES|EPERM/.test(u.error));
    return {
      id,
      status: 'FAIL',
      message: `${state.stateDir}: ${state.unreadable.map((u) => `${u.file}: ${u.error}`).join('; ')}`,
      fix: denied
        ? 'run doctor as root (the state is root-only)'
        : 'the plugin does not start with a broken record: repair the file, or, with the plugin stopped, move it out of the state dir if Docker no longer has that network (docker network ls --no-trunc)',
    };
  }
  if (!state.exists) {
    return pluginAnswers
      ? {
          id,
          status: 'WARN',
          message: `${state.stateDir} does not exist, yet a plugin answers on the socket: it keeps its state somewhere else`,
          fix: "give doctor the plugin's --state-dir",
        }
      : {
          id,
          status: 'OK',
          message: `${state.stateDir} does not exist yet: nothing recorded (the plugin creates it at start)`,
        };
  }
  return {
    id,
    status: 'OK',
    message: `${state.stateDir}: ${state.networks.length} network(s), ${state.endpoints.length} endpoint(s), ${state.pools.length} address pool(s) recorded, all readable`,
  };
}

/** Drift between the records and the host's links; a missing parent is left to its parent:<name> check. */
export function driftChecks(state: StateSnapshot, hostLinks: LinkInfo[], group: number | undefined): Check[] {
  const drift = findDrift(state, hostLinks, group).filter((d) => d.kind !== 'parent-missing');
  if (drift.length === 0) {
    return [
      {
        id: 'drift',
        status: 'OK',
        message: "no link of the plugin's without a record, no missing shim, no endpoint without its network",
      },
    ];
  }
  return drift.map((d) => ({
    id: `drift:${d.subject}`,
    status: 'WARN',
    message: `${d.kind}: ${d.message}`,
    fix: `${d.fix} ('tsmacvlan status' shows the whole picture)`,
  }));
}

// ---- the command ----

export interface DoctorOptions {
  parents: string[];
  socket: string;
  stateDir: string;
  json: boolean;
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
  const checks: Check[] = [privilegesCheck(readFileSync('/proc/self/status', 'utf8'))];
  checks.push(...kernelChecks(probe));
  const vlanSupport = 'error' in probe || !probe.vlan ? undefined : probe.vlan.ok;

  const state = readState(options.stateDir);
  const uses = new Map<string, ParentUse>();
  for (const name of options.parents) uses.set(name, { given: true, networks: [] });
  for (const network of [...state.networks].sort((a, b) => a.parent.localeCompare(b.parent))) {
    const use = uses.get(network.parent) ?? { given: false, networks: [] };
    use.networks.push(network);
    uses.set(network.parent, use);
  }
  for (const [name, use] of uses) checks.push(await parentCheck(name, use, links, facts, vlanSupport));

  const socket = await socketCheck(options.socket);
  checks.push(socket);
  checks.push(stateCheck(state, socket.status === 'OK'));
  // The instance the socket names: its device group marks its links.
  if (state.unreadable.length === 0)
    checks.push(...driftChecks(state, await links.list(), stateGroup(options.stateDir)));
  return { version: 1, ok: !checks.some((c) => c.status === 'FAIL'), checks };
}

export function formatDoctor(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.id.length));
  const lines: string[] = [];
  for (const check of report.checks) {
    lines.push(`${check.status.padEnd(4)}  ${check.id.padEnd(width)}  ${check.message}`);
    if (check.fix) lines.push(`${' '.repeat(6 + width)}  fix: ${check.fix}`);
  }
  const count = (s: CheckStatus) => report.checks.filter((c) => c.status === s).length;
  lines.push('', `${count('FAIL')} FAIL, ${count('WARN')} WARN, ${count('OK')} OK`);
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
