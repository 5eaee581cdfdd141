// sysfs facts of a link: what rtnetlink does not tell (its driver, whether it is wireless).
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type LinkInfo } from './link-info';

/** Facts about a link that only sysfs has. */
export interface SysfsFacts {
  /** The kernel driver bound to the device (virtio_net, e1000e...); none for virtual links. */
  driver?: string;
  wireless: boolean;
}

/**
 * The driver of a link and whether it is wireless, from /sys/class/net. sysfs shows the network namespace of whoever
 * mounted it, which need not be ours (`unshare --net` without a new /sys): the facts count only when the directory
 * is this very link (same ifindex and MAC), else undefined.
 */
export function sysfsFacts(link: LinkInfo, sysfs = '/sys'): SysfsFacts | undefined {
  const dir = join(sysfs, 'class/net', link.name);
  const read = (file: string) => {
    try {
      return readFileSync(join(dir, file), 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  if (read('ifindex') !== String(link.index) || (link.mac !== undefined && read('address') !== link.mac))
    return undefined;
  let driver: string | undefined;
  try {
    driver = basename(readlinkSync(join(dir, 'device/driver')));
  } catch {
    driver = undefined; // a virtual link has no device
  }
  const wireless = existsSync(join(dir, 'wireless')) || existsSync(join(dir, 'phy80211'));
  return { ...(driver && { driver }), wireless };
}
