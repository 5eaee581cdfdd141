// Doctor: each parent, named or recorded: present, up, not enslaved, the links it carries already, and what its NIC
// driver needs on a hypervisor (or an access point).
import { Links } from '../../kernel/links';
import { childMode, linkOptions, sharingProblem } from '../../driver/link-kind';
import type { NetworkRecord } from '../../driver/network-options';
import { internalParentName } from '../../driver/parents';
import { GC_ADVICE } from '../drift';
import { sysfsFacts } from '../../kernel/sysfs';
import { type LinkInfo, type LinkDetails } from '../../kernel/link-info';
import { RANK, type Check, type CheckStatus } from './check';
export interface HostFacts {
  /** Root of sysfs, for the driver of a link. */
  sysfs: string;
  /** The CPU reports a hypervisor (the `hypervisor` flag in /proc/cpuinfo): we are a VM. */
  hypervisor: boolean;
}

const KVM_ADVICE =
  'KVM/QEMU (Proxmox, libvirt, clouds): on a Linux bridge on the host this usually works; with Open vSwitch, OpenStack port security or a public cloud (AWS, GCP, Azure) frames from MACs the VM was not given are dropped: allow them (e.g. disable port security, or add allowed address pairs) or use a network the provider routes';
const VMWARE_ADVICE =
  'VMware: set Promiscuous mode, MAC address changes and Forged transmits to Accept on the port group (or enable MAC learning on a distributed switch)';
const HYPERV_ADVICE =
  "Hyper-V: enable MAC address spoofing on the VM's network adapter (Set-VMNetworkAdapter -VMName <vm> -MacAddressSpoofing On); Azure drops such frames";
/** NICs that VMware and VirtualBox emulate, also found on real hardware. */
const EMULATED_NIC_ADVICE =
  'VMware: set Promiscuous mode, MAC address changes and Forged transmits to Accept on the port group; VirtualBox: set Promiscuous Mode to Allow All on the adapter';

/** NIC drivers of virtual machines, and what to allow on the hypervisor so frames from the containers' MACs pass. */
const VM_NICS: Record<string, { vmOnly: boolean; advice: string }> = {
  virtio_net: {
    vmOnly: true,
    advice: KVM_ADVICE,
  },
  vmxnet3: {
    vmOnly: true,
    advice: VMWARE_ADVICE,
  },
  hv_netvsc: {
    vmOnly: true,
    advice: HYPERV_ADVICE,
  },
  e1000: {
    vmOnly: false,
    advice: EMULATED_NIC_ADVICE,
  },
  e1000e: {
    vmOnly: false,
    advice: EMULATED_NIC_ADVICE,
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

/** Looks links up by index, with one dump at most. */
type ByIndex = (index: number) => Promise<LinkInfo | undefined>;

/** Findings about an existing link as a parent. */
async function linkFindings(link: LinkDetails, use: ParentUse, links: Links, facts: HostFacts): Promise<Finding[]> {
  if (link.loopback) {
    return [
      {
        status: 'FAIL',
        text: 'is the loopback interface',
        fix: 'use an Ethernet interface, such as eth1, as the parent',
      },
    ];
  }
  let all: LinkInfo[] | undefined;
  const list = async () => (all ??= await links.list());
  const byIndex: ByIndex = async (index) => (await list()).find((l) => l.index === index);
  const children = (await list()).filter((l) => l.parentIndex === link.index && l.child);
  return [
    stateFinding(link),
    ...(await masterFindings(link, byIndex)),
    ...mtuFindings(link, use),
    ...childFindings(children, use),
    ...(await nicFindings(link, byIndex, facts, use)),
  ];
}

/**
 * The macvlans or ipvlans the parent carries in this namespace (the plugin's shims, anyone else's links), and whether
 * its networks can join them: the kernel never mixes the kinds on one parent (EBUSY), and keeps one ipvlan mode and
 * flag per parent. Said for a `--parent` too, before a `docker network create` of the other kind fails.
 */
function childFindings(children: LinkInfo[], use: ParentUse): Finding[] {
  const first = children[0]?.child;
  if (!first) return [];
  const names = children.map((c) => c.name).join(', ');
  const findings: Finding[] = [];
  for (const network of use.networks) {
    const clashing = children.filter((c) => sharingProblem(childMode(network), c.child!));
    if (!clashing.length) continue;
    findings.push({
      status: 'FAIL',
      text: `network ${network.id.slice(0, 12)} (${linkOptions(childMode(network))}) cannot join its ${clashing[0]!.child!.kind} link(s) ${clashing.map((c) => c.name).join(', ')}: ${sharingProblem(childMode(network), clashing[0]!.child!)}`,
      fix: `remove those links, or recreate the network on another parent (a VLAN of it works: -o parent=<parent>.<vlan id>)`,
    });
  }
  if (findings.length) return findings;
  const only =
    first.kind === 'macvlan'
      ? 'only macvlan networks can use it: the kernel refuses ipvlans beside macvlans (EBUSY)'
      : `only ipvlan networks with ${linkOptions(first)} can use it: the kernel refuses macvlans beside ipvlans (EBUSY), and keeps one ipvlan mode per parent`;
  return [{ status: 'OK', text: `carries ${first.kind} link(s) ${names}: ${only}` }];
}

function stateFinding(link: LinkDetails): Finding {
  if (!link.up)
    return {
      status: 'FAIL',
      text: 'is down: containers on it are cut off',
      fix: `bring it up: ip link set ${link.name} up (and in the host's network configuration, so it stays up)`,
    };
  if (!link.carrier)
    return {
      status: 'WARN',
      text: `is up but has no carrier (${link.operstate}): nothing passes through it`,
      fix: `connect it: cable plugged in, switch port enabled, or the VM's virtual NIC connected`,
    };
  return { status: 'OK', text: 'is up, with carrier' };
}

async function masterFindings(link: LinkDetails, byIndex: ByIndex): Promise<Finding[]> {
  if (link.masterIndex === undefined) return [];
  const master = (await byIndex(link.masterIndex))?.name ?? `link ${link.masterIndex}`;
  const kind = link.slaveKind ?? 'master';
  if (['bridge', 'bond', 'team', 'openvswitch'].includes(kind)) {
    return [
      {
        status: 'FAIL',
        text: `is a port of ${kind} '${master}': the ${kind} takes its traffic, and the kernel refuses macvlans on it (EBUSY)`,
        fix: `use '${master}' itself as the parent (-o parent=${master})`,
      },
    ];
  }
  return [
    {
      status: 'WARN',
      text: `is enslaved to ${kind} '${master}'`,
      fix: `make sure traffic of '${master}' is meant to carry containers, or use another interface`,
    },
  ];
}

function mtuFindings(link: LinkDetails, use: ParentUse): Finding[] {
  const findings: Finding[] = [{ status: 'OK', text: `MTU ${link.mtu}` }];
  for (const network of use.networks) {
    if (network.mtu !== undefined && network.mtu > link.mtu) {
      findings.push({
        status: 'FAIL',
        text: `network ${network.id.slice(0, 12)} asks for MTU ${network.mtu}, more than its ${link.mtu}: containers cannot join it`,
        fix: `raise the MTU (ip link set ${link.name} mtu ${network.mtu}) or recreate the network with -o mtu=${link.mtu} or less`,
      });
    }
  }
  return findings;
}

/** The parent's networks all give their containers ipvlans, which show the LAN the parent's own MAC only. */
function allIpvlan(use: ParentUse): boolean {
  return use.networks.length > 0 && use.networks.every((network) => network.kind === 'ipvlan');
}

/**
 * What the NIC under the link (under a VLAN: the one the hypervisor sees) needs: a hypervisor or an access point may
 * drop frames from MACs it did not give out, which is what macvlans send and ipvlans do not.
 */
async function nicFindings(link: LinkDetails, byIndex: ByIndex, facts: HostFacts, use: ParentUse): Promise<Finding[]> {
  const findings: Finding[] = [];
  const physical =
    link.kind === 'vlan' && link.parentIndex !== undefined ? ((await byIndex(link.parentIndex)) ?? link) : link;
  if (physical !== link) findings.push({ status: 'OK', text: `VLAN ${link.vlanId ?? '?'} on ${physical.name}` });
  const sys = sysfsFacts(physical, facts.sysfs);
  const it = physical === link ? 'is' : `its NIC ${physical.name} is`;
  const ipvlan = allIpvlan(use);
  if (sys?.driver) {
    const vm = VM_NICS[sys.driver];
    if (vm && (vm.vmOnly || facts.hypervisor) && !ipvlan) {
      findings.push({
        status: 'WARN',
        text: `${it} a virtual machine's NIC (driver ${sys.driver}): the hypervisor may drop frames to and from the containers' own MACs`,
        fix: `allow promiscuous mode, MAC address changes / MAC spoofing and forged transmits for this NIC on the hypervisor, or use ipvlan_mode=l2, whose containers share the NIC's MAC. ${vm.advice}`,
      });
    } else {
      findings.push({
        status: 'OK',
        text: `driver ${sys.driver}${vm && ipvlan ? ': its ipvlan networks show the LAN its own MAC only' : ''}`,
      });
    }
  }
  if (sys?.wireless) {
    findings.push(
      ipvlan
        ? {
            status: 'OK',
            text: `${it} a wireless interface: its ipvlan networks send with its own MAC, as access points require`,
          }
        : {
            status: 'WARN',
            text: `${it} a wireless interface: access points drop frames from MACs that did not associate, which macvlans' are`,
            fix: `this parent is a wireless interface: use ipvlan_mode=l2, whose containers share its MAC (see docs/ipvlan.md), or a wired interface`,
          },
    );
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

/**
 * Who needs 802.1q: every `--parent` and recorded network whose parent is `<interface>.<vlan id>`, unless a link of
 * another kind already has that name (then it is used as it is, and no VLAN is made).
 */
export async function vlanUsers(uses: Map<string, ParentUse>, links: Links): Promise<string[]> {
  const users: string[] = [];
  for (const [name, use] of uses) {
    if (!vlanName(name)) continue;
    const existing = await links.details(name);
    if (existing && existing.kind !== 'vlan') continue;
    if (use.given) users.push(`--parent ${name}`);
    for (const network of use.networks) users.push(`network ${network.id.slice(0, 12)} (parent ${name})`);
  }
  return users;
}

/** Who needs ipvlan links: every recorded ipvlan network. */
export function ipvlanUsers(uses: Map<string, ParentUse>): string[] {
  const users: string[] = [];
  for (const [name, use] of uses)
    for (const network of use.networks)
      if (network.kind === 'ipvlan') users.push(`network ${network.id.slice(0, 12)} (parent ${name})`);
  return users;
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
