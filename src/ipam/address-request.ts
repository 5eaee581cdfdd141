// What a RequestAddress or ReleaseAddress names: an address of the pool's subnet, as Docker writes it ("ip", or
// "ip/len" with the subnet's length), checked before anything changes. Each refusal says what is wrong.
import { PluginError } from '../errors';
import { contains, parseIp } from '../ip/address';
import { family } from './pool-request';
import type { Pool } from './subnet-model';

/** The address `text` names in `pool`'s subnet; `label` says what it is in a refusal ('gateway', 'address'). */
export function addressOfPool(text: string, pool: Pool, label: string): bigint {
  const subnet = pool.subnet;
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip)
    throw new PluginError(
      `${label} '${text.slice(0, 100)}' is not an IP address (expected e.g. ${subnet.text(subnet.lo)})`,
    );
  if (slash >= 0 && text.slice(slash + 1) !== String(subnet.cidr.prefix)) {
    throw new PluginError(
      `${label} ${text} does not have the prefix length of subnet ${subnet.cidr.text}; give the address alone`,
    );
  }
  if (ip.v6 !== subnet.v6)
    throw new PluginError(`${label} ${text} is ${family(ip.v6)}, but pool ${pool.id} is ${family(subnet.v6)}`);
  if (!contains(subnet.cidr, ip.value)) {
    throw new PluginError(`${label} ${text} is not in subnet ${subnet.cidr.text} of pool ${pool.id}`);
  }
  return ip.value;
}
