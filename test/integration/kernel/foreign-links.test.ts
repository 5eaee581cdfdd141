// Deleting a link inside another namespace by netns id, from this one, as the driver does when a DHCP lease is lost.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteInNamespace, deleteMovedChild } from '../../../src/kernel/foreign-links';
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
    expect(await deleteInNamespace(`/run/netns/${ns}`, { mac: '02:00:00:00:ab:01' })).toBe(true);
    expect(inNs('-br', 'link', 'show')).not.toContain('eth0');
    expect(linkNames()).toEqual(ours);
    expect(await deleteInNamespace(`/run/netns/${ns}`, { mac: '02:00:00:00:ab:01' })).toBe(false);
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

      expect(await deleteMovedChild(parentIndex, 'macvlan', { mac })).toBe(true);
      expect(inContainer()).not.toContain(`${ns}m`);
      expect(inNs('-br', 'link', 'show')).toContain('decoy@decoyp');
      expect(await deleteMovedChild(parentIndex, 'macvlan', { mac })).toBe(false);
    } finally {
      ip('netns', 'del', container);
      ip('link', 'del', parent);
    }
  });

  // How an ipvlan is found (its MAC is its parent's, shared by its siblings): by the index it keeps when it is moved,
  // and its kind. This kernel has no ipvlan, so a macvlan stands in; the VM suite does it with ipvlans.
  it('finds a moved child by its index and kind, in its namespace file and without it', async () => {
    const container = `${ns}i`;
    const parent = `${ns}r`;
    ip('netns', 'add', container);
    try {
      ip('link', 'add', parent, 'type', 'veth', 'peer', 'name', `${ns}s`);
      const indexOf = (name: string, ...netns: string[]) =>
        (JSON.parse(ip(...netns, '-j', 'link', 'show', name)) as { ifindex: number }[])[0]!.ifindex;
      const parentIndex = indexOf(parent);
      const inContainer = () => execFileSync('ip', ['-n', container, '-br', 'link'], { encoding: 'utf8' });
      for (const [name, remove] of [
        ['a', (index: number) => deleteInNamespace(`/run/netns/${container}`, { index, kind: 'macvlan' })],
        ['b', (index: number) => deleteMovedChild(parentIndex, 'macvlan', { index, kind: 'macvlan' })],
      ] as const) {
        ip('link', 'add', 'link', parent, 'name', `${ns}${name}`, 'type', 'macvlan', 'mode', 'bridge');
        const index = indexOf(`${ns}${name}`);
        ip('link', 'set', `${ns}${name}`, 'netns', container);
        expect(indexOf(`${ns}${name}`, '-n', container)).toBe(index); // the index goes with the link
        // Not a link of another kind by that index.
        expect(await deleteInNamespace(`/run/netns/${container}`, { index, kind: 'ipvlan' })).toBe(false);
        expect(await remove(index)).toBe(true);
        expect(inContainer()).not.toContain(`${ns}${name}`);
        expect(await remove(index)).toBe(false);
      }
    } finally {
      ip('netns', 'del', container);
      ip('link', 'del', parent);
    }
  });

  it('says which namespace file it could not open', async () => {
    await expect(deleteInNamespace('/run/netns/tmvH-absent', { mac: '02:00:00:00:ab:01' })).rejects.toThrow(
      /tmvH-absent/,
    );
  });
});
