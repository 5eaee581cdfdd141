// Deleting a link inside another namespace by netns id, from this one, as the driver does when a DHCP lease is lost.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteByMac } from '../../../src/kernel/foreign-links';
import { assertPrivateNetns, ip, linkNames } from '../../helpers/net';

describe('links in another namespace', () => {
  const ns = `tmvH${randomBytes(3).toString('hex')}f`;
  const inNs = (...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });

  beforeAll(() => {
    assertPrivateNetns();
    ip('netns', 'add', ns);
    inNs('link', 'add', 'eth0', 'address', '02:00:00:00:ab:01', 'type', 'veth', 'peer', 'name', 'eth1');
    inNs('link', 'set', 'eth0', 'up');
  });
  afterAll(() => ip('netns', 'del', ns));

  it('deletes the link with the MAC there, not here; a second time there is nothing to delete', async () => {
    const ours = linkNames();
    expect(await deleteByMac(`/run/netns/${ns}`, '02:00:00:00:ab:01')).toBe(true);
    expect(inNs('-br', 'link', 'show')).not.toContain('eth0');
    expect(linkNames()).toEqual(ours);
    expect(await deleteByMac(`/run/netns/${ns}`, '02:00:00:00:ab:01')).toBe(false);
    // A namespace that already has an id here (from the first call) is found again by it.
    expect(ip('netns', 'list-id')).toMatch(/nsid \d+/);
  });

  it('says which namespace file it could not open', async () => {
    await expect(deleteByMac('/run/netns/tmvH-absent', '02:00:00:00:ab:01')).rejects.toThrow(/tmvH-absent/);
  });
});
