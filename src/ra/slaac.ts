// The address stateless autoconfiguration forms (RFC 4862 §5.5.3) from an advertised prefix and an interface
// identifier: here the modified EUI-64 of the endpoint's MAC (RFC 4291 appendix A). Why EUI-64 and not RFC 7217's
// stable-privacy identifiers is in docs/ipv6.md. Pure.
import { macBytes } from '../kernel/link-frames';

/** Ethernet's interface identifiers are 64 bits: SLAAC needs a prefix of exactly 64 (RFC 2464 §4). */
export const SLAAC_PREFIX_LENGTH = 64;

/** The modified EUI-64 identifier of a MAC: ff:fe in the middle, the universal/local bit inverted. */
export function eui64(mac: string): bigint {
  const b = macBytes(mac);
  const bytes = Buffer.from([b[0]! ^ 0x02, b[1]!, b[2]!, 0xff, 0xfe, b[3]!, b[4]!, b[5]!]);
  return bytes.readBigUInt64BE(0);
}

/** The SLAAC address of `mac` in the /64 `prefix`. */
export function slaacAddress(prefix: bigint, mac: string): bigint {
  return ((prefix >> 64n) << 64n) | eui64(mac);
}
