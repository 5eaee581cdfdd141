// Deleting a link inside another namespace by netns id, from this one, as the driver does when a DHCP lease is lost.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteByMac, deleteMovedMacvlan } from '../../../src/kernel/foreign-links';
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

  it('finds a macvlan moved out of here without its namespace file, by the id the move gave that namespace', async () => {
    const mac = '02:00:00:00:ab:02';
    const container = `${ns}c`;
    const parent = `${ns}p`;
    ip('netns', 'add', container);
    try {
      ip('link', 'add', parent, 'type', 'veth', 'peer', 'name', `${ns}q`);
      const parentIndex = (JSON.parse(ip('-j', 'link', 'show', parent)) as { ifindex: number }[])[0]!.ifindex;
      ip('link', 'add', 'link', parent, 'name', `${ns}m`, 'address', mac, 'type', 'macvlan', 'mode', 'bridge');
      ip('link', 'set', `${ns}m`, 'netns', container); // as Docker moves an endpoint's link into the container
      // The same MAC on a macvlan over a parent of the same index inside the other namespace: not ours.
      inNs('link', 'add', 'decoyp', 'index', String(parentIndex), 'type', 'veth', 'peer', 'name', 'decoyq');
      inNs('link', 'add', 'link', 'decoyp', 'name', 'decoy', 'address', mac, 'type', 'macvlan', 'mode', 'bridge');
      const inContainer = () => execFileSync('ip', ['-n', container, '-br', 'link'], { encoding: 'utf8' });
      expect(inContainer()).toContain(`${ns}m`);

      expect(await deleteMovedMacvlan(parentIndex, mac)).toBe(true);
      expect(inContainer()).not.toContain(`${ns}m`);
      expect(inNs('-br', 'link', 'show')).toContain('decoy@decoyp');
      expect(await deleteMovedMacvlan(parentIndex, mac)).toBe(false);
    } finally {
      ip('netns', 'del', container);
      ip('link', 'del', parent);
    }
  });

  it('says which namespace file it could not open', async () => {
    await expect(deleteByMac('/run/netns/tmvH-absent', '02:00:00:00:ab:01')).rejects.toThrow(/tmvH-absent/);
  });
});
