// The netlink attributes the plugin writes and reads, as bytes: what the kernel answered for a macvlan and its veth
// parent (test/fixtures/netlink/links.json, recorded by record.sh in a namespace of its own) read into LinkDetails,
// and the attributes the plugin builds itself (nests the library has no encoder for, u32s, MACs, IPv4 addresses and
// the VLAN protocol, the one big-endian field). Netlink is in the host's byte order: this file runs on arm64's node
// too (test/arm64/run.sh), where a word-size or byte-order slip would show.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ifla, rt } from 'netlink';
import { describe, expect, it } from 'vitest';
import { attr, bufferToMac, flatten, ipv4ToBuffer, macToBuffer, u32 } from '../../../src/kernel/attributes';
import { MODE_FLAGS, swap16, toLinkDetails, VLAN_ETHERTYPES } from '../../../src/kernel/link-info';

const recorded = JSON.parse(readFileSync(join(__dirname, '../../fixtures/netlink/links.json'), 'utf8')) as {
  links: Record<'tsmvrp0' | 'tsmvrm0', string>;
};
const hex = (buf: Buffer) => buf.toString('hex');

describe("the kernel's link messages", () => {
  it('a macvlan: name, index, parent, MAC, MTU, mode, alias and group', () => {
    const link = toLinkDetails(rt.parseLinkMessage(Buffer.from(recorded.links.tsmvrm0, 'hex')));
    expect(link).toMatchObject({
      name: 'tsmvrm0',
      kind: 'macvlan',
      mac: '02:42:0a:e8:00:05',
      mtu: 1400,
      child: { kind: 'macvlan', mode: 'bridge' },
      alias: 'tsmacvlan endpoint of network 0123456789ab',
      group: 77,
      up: true,
    });
  });

  it('its parent: a veth whose index is the macvlan parent index', () => {
    const parent = toLinkDetails(rt.parseLinkMessage(Buffer.from(recorded.links.tsmvrp0, 'hex')));
    const macvlan = toLinkDetails(rt.parseLinkMessage(Buffer.from(recorded.links.tsmvrm0, 'hex')));
    expect(parent).toMatchObject({ name: 'tsmvrp0', kind: 'veth', mtu: 1500, up: false });
    expect(macvlan.parentIndex).toBe(parent.index);
    expect(parent.index).toBeGreaterThan(0);
  });
});

describe('attributes the plugin encodes', () => {
  it('a header is length then type, 16 bits each, and the payload is padded to 4 bytes', () => {
    expect(hex(attr(0x0102, Buffer.from([0xaa, 0xbb, 0xcc, 0xdd, 0xee])))).toBe('09000201' + 'aabbccddee' + '000000');
    expect(hex(attr(3, Buffer.alloc(0)))).toBe('04000300');
  });

  it('a u32 is 4 bytes in the little-endian order of both architectures', () => {
    expect(hex(u32(0x01020304))).toBe('04030201');
    expect(hex(u32(0xffffffff))).toBe('ffffffff');
  });

  it('MACs and IPv4 addresses are bytes in network order', () => {
    expect(hex(macToBuffer('02:42:0a:e8:00:05'))).toBe('02420ae80005');
    expect(bufferToMac(Buffer.from('02420ae80005', 'hex'))).toBe('02:42:0a:e8:00:05');
    expect(hex(ipv4ToBuffer('10.232.0.1'))).toBe('0ae80001');
  });

  it("a macvlan's link info: the kind, then its mode as a u32 in a nest", () => {
    const info = flatten(
      ifla.formatInfo({
        kind: 'macvlan',
        data: flatten(ifla.formatMacvlan({ mode: ifla.formatMacvlanMode(MODE_FLAGS.bridge) })),
      }),
    );
    // IFLA_INFO_KIND "macvlan\0", IFLA_INFO_DATA { IFLA_MACVLAN_MODE = MACVLAN_MODE_BRIDGE (4) }
    expect(hex(info)).toBe('0c000100' + hex(Buffer.from('macvlan\0')) + '0c000200' + '08000100' + '04000000');
  });

  it('the VLAN protocol is big-endian on the wire: 802.1ad is 88 a8 whatever the host', () => {
    const data = flatten(ifla.formatVlan({ id: 10, protocol: swap16(VLAN_ETHERTYPES['802.1ad']) }));
    // IFLA_VLAN_ID 10 (host order, padded), IFLA_VLAN_PROTOCOL (network order; the last attribute goes unpadded)
    expect(hex(data)).toBe('06000100' + '0a00' + '0000' + '06000500' + '88a8');
    expect(swap16(ifla.parseVlan(data).protocol!)).toBe(0x88a8);
  });
});
