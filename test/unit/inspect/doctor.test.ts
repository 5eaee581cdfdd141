// doctor's pieces without a kernel: capabilities, the probe's verdicts, parent findings on a fake link layer and sysfs, the JSON schema.
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import type { Links } from '../../../src/kernel/links';
import type { NetworkRecord } from '../../../src/driver/network-options';
import { sysfsFacts } from '../../../src/kernel/sysfs';
import { type LinkInfo, type LinkDetails } from '../../../src/kernel/link-info';
import { DOCTOR_JSON_SCHEMA, type DoctorReport } from '../../../src/inspect/doctor/check';
import { driftChecks, slaacChecks, stateCheck } from '../../../src/inspect/doctor/state';
import type { FormatReport } from '../../../src/state/migrate';
import { formatDoctor } from '../../../src/inspect/doctor/doctor';
import { kernelChecks, probeKernel } from '../../../src/inspect/doctor/kernel-probe';
import { parentCheck, type HostFacts } from '../../../src/inspect/doctor/parents';
import { parseCapEff, privilegesCheck } from '../../../src/inspect/doctor/privileges';

const validate = new Ajv({ allErrors: true }).compile(DOCTOR_JSON_SCHEMA);

const procStatus = (capEff: string, uid = 0) =>
  `Name:\tnode\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\n`;

describe('privileges', () => {
  it('reads CapEff as hex', () => {
    expect(parseCapEff(procStatus('000001fffeffffff'))).toBe(0x1fffeffffffn);
    expect(parseCapEff('no caps here')).toBe(0n);
  });

  it('is OK with CAP_NET_ADMIN and CAP_SYS_ADMIN, WARNs without CAP_SYS_ADMIN, FAILs without CAP_NET_ADMIN', () => {
    expect(privilegesCheck(procStatus('000001fffeffffff'))).toMatchObject({
      status: 'OK',
      message: expect.stringContaining('uid 0'),
    });
    expect(privilegesCheck(procStatus((1n << 12n).toString(16).padStart(16, '0'), 1000))).toMatchObject({
      status: 'WARN',
      fix: expect.stringContaining('root'),
    });
    const fail = privilegesCheck(procStatus('0000000000000000', 1000));
    expect(fail).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('uid 1000 without CAP_NET_ADMIN'),
      fix: expect.stringContaining('sudo'),
    });
  });
});

describe('kernel checks', () => {
  it('the probe refuses to run in the namespace doctor was started from, or in any that is not fresh (it would create links there)', async () => {
    await expect(probeKernel(readlinkSync('/proc/self/ns/net'))).rejects.toThrow(
      /refusing to probe the kernel: this is the namespace doctor runs in/,
    );
    // Wherever the unit tests run, there is more than lo (eth0, or the veths of other suites).
    await expect(probeKernel('net:[1]')).rejects.toThrow(
      /refusing to probe the kernel: this network namespace is not a fresh one/,
    );
  });

  it('are OK when the probe made and deleted both links', () => {
    const checks = kernelChecks({ lower: 'veth', macvlan: { ok: true }, ipvlan: { ok: true }, vlan: { ok: true } });
    expect(checks.map((c) => [c.id, c.status])).toEqual([
      ['kernel.macvlan', 'OK'],
      ['kernel.8021q', 'OK'],
      ['kernel.ipvlan', 'OK'],
    ]);
  });

  it('FAIL 802.1q with modprobe 8021q advice when the kernel has no VLAN support and a VLAN is needed', () => {
    const [macvlan, vlan] = kernelChecks(
      { lower: 'veth', macvlan: { ok: true }, ipvlan: { ok: true }, vlan: { ok: false, errno: 'ENOTSUP' } },
      ['--parent eth1.10'],
    );
    expect(macvlan.status).toBe('OK');
    expect(vlan).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('ENOTSUP'),
      fix: expect.stringContaining('modprobe 8021q'),
    });
  });

  it('FAIL macvlan with modprobe macvlan advice', () => {
    const [macvlan] = kernelChecks({
      lower: 'veth',
      macvlan: { ok: false, errno: 'EOPNOTSUPP' },
      ipvlan: { ok: true },
      vlan: { ok: true },
    });
    expect(macvlan).toMatchObject({ status: 'FAIL', fix: expect.stringContaining('modprobe macvlan') });
  });

  it('WARN (not OK, not FAIL) when the probe could not run or had nothing to test on', () => {
    for (const probe of [
      { error: 'unshare: unshare failed: Operation not permitted' },
      { lower: null, lowerErrno: 'ENOTSUP', macvlan: null, ipvlan: null, vlan: null },
    ] as const) {
      const checks = kernelChecks(probe);
      expect(checks.map((c) => c.status)).toEqual(['WARN', 'WARN', 'WARN']);
      for (const check of checks) expect(check.fix).toBeTruthy();
    }
  });
});

// A link layer that answers from a fixed list, as the kernel would.
function fakeLinks(list: LinkDetails[]): Links {
  return {
    details: async (name: string) => list.find((l) => l.name === name),
    list: async () => list as LinkInfo[],
  } as unknown as Links;
}

const link = (over: Partial<LinkDetails> & { name: string; index: number }): LinkDetails => ({
  up: true,
  loopback: false,
  mtu: 1500,
  carrier: true,
  operstate: 'up',
  mac: `02:00:00:00:00:${over.index.toString(16).padStart(2, '0')}`,
  ...over,
});

const network = (over: Partial<NetworkRecord>): NetworkRecord =>
  ({
    id: 'a'.repeat(64),
    parent: 'eth1',
    ownsParent: false,
    kind: 'macvlan',
    mode: 'bridge',
    internal: false,
    ...over,
  }) as NetworkRecord;

describe('parent checks', () => {
  const sysfs = mkdtempSync(join(tmpdir(), 'dr-sysfs-'));
  afterAll(() => rmSync(sysfs, { recursive: true, force: true }));
  const noVm: HostFacts = { sysfs, hypervisor: false };

  /** A /sys/class/net/<name> directory like the kernel's, with a device driver symlink. */
  function sysLink(l: LinkInfo, driver?: string, wireless = false): void {
    const dir = join(sysfs, 'class/net', l.name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'ifindex'), `${l.index}\n`);
    writeFileSync(join(dir, 'address'), `${l.mac}\n`);
    if (driver) {
      mkdirSync(join(sysfs, 'bus/drivers', driver), { recursive: true });
      mkdirSync(join(dir, 'device'), { recursive: true });
      symlinkSync(join(sysfs, 'bus/drivers', driver), join(dir, 'device/driver'));
    }
    if (wireless) mkdirSync(join(dir, 'wireless'));
  }

  it('is OK for an Ethernet interface that is up with a carrier, and says its MTU and who uses it', async () => {
    const eth1 = link({ name: 'eth1', index: 2 });
    const check = await parentCheck('eth1', { given: false, networks: [network({})] }, fakeLinks([eth1]), noVm);
    expect(check).toEqual({
      id: 'parent:eth1',
      status: 'OK',
      message: `eth1: is up, with carrier; MTU 1500; used by network(s) ${'a'.repeat(12)}`,
    });
  });

  it('FAILs a down parent with the command that brings it up, WARNs one without carrier', async () => {
    const down = await parentCheck(
      'eth1',
      { given: true, networks: [] },
      fakeLinks([link({ name: 'eth1', index: 2, up: false, carrier: false })]),
      noVm,
    );
    expect(down).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('is down'),
      fix: expect.stringContaining('ip link set eth1 up'),
    });
    const noCarrier = await parentCheck(
      'eth1',
      { given: true, networks: [] },
      fakeLinks([link({ name: 'eth1', index: 2, carrier: false, operstate: 'down' })]),
      noVm,
    );
    expect(noCarrier).toMatchObject({ status: 'WARN', message: expect.stringContaining('no carrier') });
  });

  it('FAILs loopback, a bridge port and a bond slave, naming the master to use instead', async () => {
    const links = fakeLinks([
      link({ name: 'lo', index: 1, loopback: true }),
      link({ name: 'br0', index: 3, kind: 'bridge' }),
      link({ name: 'eth1', index: 4, masterIndex: 3, slaveKind: 'bridge' }),
      link({ name: 'bond0', index: 5, kind: 'bond' }),
      link({ name: 'eth2', index: 6, masterIndex: 5, slaveKind: 'bond' }),
    ]);
    expect(await parentCheck('lo', { given: true, networks: [] }, links, noVm)).toMatchObject({
      status: 'FAIL',
      message: 'lo: is the loopback interface',
    });
    expect(await parentCheck('eth1', { given: true, networks: [] }, links, noVm)).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining("port of bridge 'br0'"),
      fix: "use 'br0' itself as the parent (-o parent=br0)",
    });
    expect(await parentCheck('eth2', { given: true, networks: [] }, links, noVm)).toMatchObject({
      status: 'FAIL',
      fix: expect.stringContaining('-o parent=bond0'),
    });
  });

  it("FAILs a network whose MTU is above its parent's", async () => {
    const check = await parentCheck(
      'eth1',
      { given: false, networks: [network({ mtu: 9000 })] },
      fakeLinks([link({ name: 'eth1', index: 2 })]),
      noVm,
    );
    expect(check).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('asks for MTU 9000'),
      fix: expect.stringContaining('ip link set eth1 mtu 9000'),
    });
  });

  it('WARNs a VM NIC (virtio_net, vmxnet3, hv_netvsc always; e1000e only under a hypervisor) with the hypervisor advice', async () => {
    const virtio = link({ name: 'ens3', index: 7 });
    const vmx = link({ name: 'ens160', index: 8 });
    const intel = link({ name: 'eno1', index: 9 });
    sysLink(virtio, 'virtio_net');
    sysLink(vmx, 'vmxnet3');
    sysLink(intel, 'e1000e');
    const links = fakeLinks([virtio, vmx, intel]);
    const ens3 = await parentCheck('ens3', { given: true, networks: [] }, links, noVm);
    expect(ens3).toMatchObject({
      status: 'WARN',
      message: expect.stringContaining('driver virtio_net'),
      fix: expect.stringContaining('promiscuous mode'),
    });
    const ens160 = await parentCheck('ens160', { given: true, networks: [] }, links, noVm);
    expect(ens160.fix).toContain('Forged transmits to Accept');
    expect(await parentCheck('eno1', { given: true, networks: [] }, links, noVm)).toMatchObject({
      status: 'OK',
      message: expect.stringContaining('driver e1000e'),
    });
    expect(await parentCheck('eno1', { given: true, networks: [] }, links, { sysfs, hypervisor: true })).toMatchObject({
      status: 'WARN',
    });
  });

  it('looks through a VLAN to its NIC, and WARNs a wireless one', async () => {
    const wlan = link({ name: 'wlan0', index: 10 });
    sysLink(wlan, 'iwlwifi', true);
    const vlan = link({ name: 'wlan0.5', index: 11, kind: 'vlan', vlanId: 5, parentIndex: 10 });
    const check = await parentCheck('wlan0.5', { given: true, networks: [] }, fakeLinks([wlan, vlan]), noVm);
    expect(check).toMatchObject({
      status: 'WARN',
      message: expect.stringContaining('its NIC wlan0 is a wireless interface'),
      fix: expect.stringContaining('this parent is a wireless interface: use ipvlan_mode=l2'),
    });
    expect(check.message).toContain('VLAN 5 on wlan0');
  });

  it('is OK with a wireless or virtual NIC whose networks are all ipvlans (they show it its own MAC only)', async () => {
    const wlan = link({ name: 'wlan1', index: 20 });
    sysLink(wlan, 'iwlwifi', true);
    const ens = link({ name: 'ens5', index: 21 });
    sysLink(ens, 'virtio_net');
    const ipvlanOn = (parent: string) => network({ parent, kind: 'ipvlan', mode: 'l2', flag: 'bridge' } as never);
    const host = fakeLinks([wlan, ens]);
    for (const [name, says] of [
      ['wlan1', 'ipvlan networks send with its own MAC'],
      ['ens5', 'driver virtio_net: its ipvlan networks show the LAN its own MAC only'],
    ]) {
      const check = await parentCheck(name, { given: false, networks: [ipvlanOn(name)] }, host, noVm);
      expect(check, check.message).toMatchObject({ status: 'OK', message: expect.stringContaining(says) });
    }
    // A macvlan network beside them is still warned about.
    const mixed = await parentCheck(
      'ens5',
      { given: false, networks: [ipvlanOn('ens5'), network({ parent: 'ens5' })] },
      host,
      noVm,
    );
    expect(mixed.status).toBe('WARN');
  });

  it('says which kind of links a parent carries already, and FAILs a network of the other kind or ipvlan mode', async () => {
    const eth2 = link({ name: 'eth2', index: 30 });
    const theirs = link({
      name: 'mv0',
      index: 31,
      kind: 'macvlan',
      parentIndex: 30,
      child: { kind: 'macvlan', mode: 'bridge' },
    });
    const host = fakeLinks([eth2, theirs]);
    const given = await parentCheck('eth2', { given: true, networks: [] }, host, noVm);
    expect(given).toMatchObject({
      status: 'OK',
      message: expect.stringContaining(
        'carries macvlan link(s) mv0: only macvlan networks can use it: the kernel refuses ipvlans beside macvlans (EBUSY)',
      ),
    });
    const ipvlanNet = network({ parent: 'eth2', kind: 'ipvlan', mode: 'l2', flag: 'bridge' } as never);
    const clash = await parentCheck('eth2', { given: false, networks: [ipvlanNet] }, host, noVm);
    expect(clash).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining(
        `network ${ipvlanNet.id.slice(0, 12)} (ipvlan_mode=l2 ipvlan_flag=bridge) cannot join its macvlan link(s) mv0: the kernel never puts ipvlan and macvlan links on one parent (it answers EBUSY)`,
      ),
      fix: expect.stringContaining('another parent'),
    });
    const l3 = link({
      name: 'iv0',
      index: 32,
      kind: 'ipvlan',
      parentIndex: 30,
      child: { kind: 'ipvlan', mode: 'l3', flag: 'bridge' },
    });
    const otherMode = await parentCheck('eth2', { given: false, networks: [ipvlanNet] }, fakeLinks([eth2, l3]), noVm);
    expect(otherMode.status).toBe('FAIL');
    expect(otherMode.message).toContain('the kernel keeps one ipvlan mode and flag per parent');
    const sameMode = await parentCheck('eth2', { given: true, networks: [] }, fakeLinks([eth2, l3]), noVm);
    expect(sameMode.message).toContain('only ipvlan networks with ipvlan_mode=l3 ipvlan_flag=bridge can use it');
  });

  it("trusts sysfs only when it shows this very link (another namespace's /sys shows other links)", () => {
    const here = link({ name: 'ens4', index: 12 });
    sysLink(here, 'virtio_net');
    expect(sysfsFacts(here, sysfs)).toEqual({ driver: 'virtio_net', wireless: false });
    expect(sysfsFacts({ ...here, index: 99 }, sysfs)).toBeUndefined();
    expect(sysfsFacts({ ...here, mac: '02:00:00:00:00:99' }, sysfs)).toBeUndefined();
    expect(sysfsFacts(link({ name: 'nosuch', index: 13 }), sysfs)).toBeUndefined();
  });

  it('missing: FAIL for a named interface; for a VLAN the plugin would create, the verdict on its base interface and on 802.1q', async () => {
    const links = fakeLinks([link({ name: 'eth1', index: 2 })]);
    expect(await parentCheck('eth9', { given: true, networks: [] }, links, noVm)).toMatchObject({
      status: 'FAIL',
      message: 'eth9: does not exist',
    });
    const used = await parentCheck('eth9', { given: false, networks: [network({ parent: 'eth9' })] }, links, noVm);
    expect(used).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('containers cannot join'),
      fix: expect.stringContaining('docker network rm'),
    });

    expect(await parentCheck('eth1.10', { given: true, networks: [] }, links, noVm, true)).toMatchObject({
      status: 'OK',
      message: expect.stringContaining("creates it as VLAN 10 on 'eth1'"),
    });
    expect(await parentCheck('eth1.10', { given: true, networks: [] }, links, noVm, false)).toMatchObject({
      status: 'FAIL',
      fix: expect.stringContaining('modprobe 8021q'),
    });
    const owned = await parentCheck(
      'eth1.10',
      { given: false, networks: [network({ parent: 'eth1.10', ownsParent: true })] },
      links,
      noVm,
      true,
    );
    expect(owned).toMatchObject({
      status: 'WARN',
      message: expect.stringContaining('re-creates it'),
      fix: expect.stringContaining('restart the plugin'),
    });
    expect(await parentCheck('eth7.10', { given: true, networks: [] }, links, noVm, true)).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining("nor does 'eth7'"),
    });
    // A VLAN-like name the user made themselves (not owned) is not re-created: FAIL.
    const foreign = await parentCheck(
      'eth1.20',
      { given: false, networks: [network({ parent: 'eth1.20' })] },
      links,
      noVm,
      true,
    );
    expect(foreign.status).toBe('FAIL');
    const internalId = 'b'.repeat(64);
    const internal = await parentCheck(
      `tsmvi${'b'.repeat(10)}`,
      {
        given: false,
        networks: [network({ id: internalId, parent: `tsmvi${'b'.repeat(10)}`, ownsParent: true, internal: true })],
      },
      links,
      noVm,
    );
    expect(internal).toMatchObject({ status: 'WARN', message: expect.stringContaining('internal parent') });
  });
});

describe('state and drift checks', () => {
  const format: FormatReport = { state: 'current', formats: { 'network-record': 2 }, writtenBy: '0.2.0', message: '' };
  const state = {
    stateDir: '/x',
    exists: true,
    networks: [network({})],
    endpoints: [],
    pools: [],
    ranges: [],
    unreadable: [],
    format,
  };
  it('report unreadable records as FAIL with the way out', () => {
    const check = stateCheck(
      { ...state, unreadable: [{ file: '/x/networks/n.json', error: 'not valid JSON (Unexpected end)' }] },
      true,
    );
    expect(check).toMatchObject({
      status: 'FAIL',
      message: expect.stringContaining('/x/networks/n.json: not valid JSON'),
      fix: expect.stringContaining('repair the file'),
    });
    expect(
      stateCheck({ ...state, unreadable: [{ file: '/x', error: "EACCES: permission denied, scandir '/x'" }] }, false)
        .fix,
    ).toContain('root');
  });

  it('a state of older formats is a WARN (the plugin migrates it at start), one of newer formats a FAIL', () => {
    const older = stateCheck(
      { ...state, format: { ...format, state: 'older', message: 'formats {...}: the plugin migrates it' } },
      false,
    );
    expect(older).toMatchObject({ status: 'WARN', fix: expect.stringContaining('migrates the state') });
    const newer = stateCheck(
      { ...state, format: { ...format, state: 'newer', writtenBy: '9.0.0', message: 'written by tsmacvlan 9.0.0' } },
      true,
    );
    expect(newer).toMatchObject({ status: 'FAIL', fix: expect.stringContaining('run tsmacvlan 9.0.0 or newer') });
  });

  it('a missing state dir is OK, unless a plugin answers (then it keeps its state elsewhere)', () => {
    expect(stateCheck({ ...state, exists: false, networks: [] }, false).status).toBe('OK');
    expect(stateCheck({ ...state, exists: false, networks: [] }, true)).toMatchObject({
      status: 'WARN',
      fix: expect.stringContaining('--state-dir'),
    });
  });

  it('drift: one WARN per leak, no duplicate of a missing parent', () => {
    const links: LinkInfo[] = [
      { index: 9, name: 'stleak', up: true, loopback: false, mtu: 1500, alias: 'tsmacvlan:endpoint' },
      { index: 10, name: 'stmine', up: true, loopback: false, mtu: 1500, kind: 'macvlan', group: 7 },
    ];
    expect(driftChecks(state, links, 7)).toEqual([
      expect.objectContaining({
        id: 'drift:stmine',
        status: 'WARN',
        fix: expect.stringContaining("run 'tsmacvlan gc'"),
      }),
      expect.objectContaining({
        id: 'drift:stleak',
        status: 'WARN',
        fix: expect.stringContaining('ip link del stleak'),
      }),
    ]);
    // eth1 is missing, but that is parent:eth1's to report.
    expect(driftChecks(state, [], 7)).toEqual([expect.objectContaining({ id: 'drift', status: 'OK' })]);
  });

  it('a SLAAC prefix the router withdrew is a WARN per endpoint with the way to a new address; none without SLAAC', () => {
    const slaacEndpoint = (id: string, lost?: { condition: 'withdrawn'; at: number }) => ({
      id: id.repeat(64),
      networkId: 'n'.repeat(64),
      mac: '02:42:0a:00:00:02',
      ipv6: 'fd00:1::42:aff:fe00:2/64',
      slaac: { prefix: 'fd00:1::/64', router: 'fe80::1', ...(lost && { lost }) },
    });
    expect(slaacChecks(state)).toEqual([]);
    expect(slaacChecks({ ...state, endpoints: [slaacEndpoint('a')] })).toEqual([
      expect.objectContaining({ id: 'ipv6-prefixes', status: 'OK' }),
    ]);
    const at = Date.parse('2026-12-07T10:00:00Z');
    const checks = slaacChecks({
      ...state,
      endpoints: [slaacEndpoint('a'), slaacEndpoint('b', { condition: 'withdrawn', at })],
    });
    expect(checks).toEqual([
      {
        id: 'ipv6-prefix:bbbbbbbbbbbb',
        status: 'WARN',
        message: expect.stringContaining('fd00:1::/64 is withdrawn since 2026-12-07T10:00:00.000Z'),
        fix: expect.stringContaining('docker network connect'),
      },
    ]);
  });
});

describe('JSON output', () => {
  const report: DoctorReport = {
    version: 1,
    tsmacvlanVersion: '0.1.0',
    ok: false,
    checks: [
      { id: 'privileges', status: 'OK', message: 'running as uid 0' },
      { id: 'kernel.8021q', status: 'FAIL', message: 'no VLANs', fix: 'modprobe 8021q' },
      { id: 'parent:eth1.10', status: 'WARN', message: 'x', fix: 'y' },
      { id: 'plugin', status: 'OK', message: 'the managed plugin tsmacvlan:latest' },
      { id: 'version', status: 'WARN', message: 'x', fix: 'y' },
      { id: 'drift:tsmve0123456789', status: 'WARN', message: 'x', fix: 'y' },
    ],
  };

  it('follows its schema', () => {
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
  });

  it('the schema requires a fix on WARN and FAIL, known ids and statuses, and nothing extra', () => {
    const bad = (change: (r: any) => void) => {
      const copy = structuredClone(report) as any;
      change(copy);
      return validate(copy);
    };
    expect(bad((r) => delete r.checks[1].fix)).toBe(false);
    expect(bad((r) => (r.checks[0].status = 'ERROR'))).toBe(false);
    expect(bad((r) => (r.checks[0].id = 'whatever'))).toBe(false);
    expect(bad((r) => (r.extra = 1))).toBe(false);
    expect(bad((r) => (r.checks = []))).toBe(false);
    expect(bad((r) => delete r.ok)).toBe(false);
    expect(bad((r) => delete r.tsmacvlanVersion)).toBe(false);
  });

  it('prints one line per check, its fix under it, and a count', () => {
    const text = formatDoctor(report);
    expect(text.split('\n')[0]).toMatch(/^OK {4}privileges +running as uid 0$/);
    expect(text).toContain('FAIL  kernel.8021q');
    expect(text).toMatch(/\n {10,}fix: modprobe 8021q\n/);
    expect(text.trim().split('\n').pop()).toBe('1 FAIL, 3 WARN, 2 OK (tsmacvlan 0.1.0)');
  });
});
