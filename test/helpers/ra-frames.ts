// Router advertisements as a LAN's router sends them (RFC 4861 §4.2), for tests that play the router: the plugin
// itself only ever reads them (src/kernel/ra-frames.ts).
import { ETHERTYPE_IPV6, ethernetHeader, macBytes } from '../../src/kernel/link-frames';
import { ALL_NODES_MAC, ipv6Bytes, ipv6Packet } from '../../src/kernel/nd-frames';
import { ICMPV6_ROUTER_ADVERTISEMENT } from '../../src/kernel/ra-frames';

export interface TestPrefix {
  prefix: bigint;
  length: number;
  autonomous?: boolean;
  validSeconds: number;
  preferredSeconds: number;
}

export function buildRouterAdvert(a: {
  routerMac: string;
  router: bigint;
  managed?: boolean;
  routerLifetime?: number;
  prefixes: TestPrefix[];
}): Buffer {
  const head = Buffer.alloc(16);
  head[0] = ICMPV6_ROUTER_ADVERTISEMENT;
  head[4] = 64;
  head[5] = a.managed ? 0x80 : 0;
  head.writeUInt16BE(a.routerLifetime ?? 1800, 6);
  const source = Buffer.alloc(8);
  source[0] = 1;
  source[1] = 1;
  macBytes(a.routerMac).copy(source, 2);
  const options = a.prefixes.map((p) => {
    const option = Buffer.alloc(32);
    option[0] = 3;
    option[1] = 4;
    option[2] = p.length;
    option[3] = 0x80 | (p.autonomous === false ? 0 : 0x40);
    option.writeUInt32BE(p.validSeconds, 4);
    option.writeUInt32BE(p.preferredSeconds, 8);
    ipv6Bytes(p.prefix).copy(option, 16);
    return option;
  });
  const icmp = Buffer.concat([head, source, ...options]);
  const packet = ipv6Packet(a.router, (0xff02n << 112n) | 1n, icmp);
  return Buffer.concat([ethernetHeader(ALL_NODES_MAC, a.routerMac, ETHERTYPE_IPV6), packet]);
}
