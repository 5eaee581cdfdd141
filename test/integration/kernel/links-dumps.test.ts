// Dumps (list links, addresses, routes) beside other requests on the one rtnetlink socket of Links: a reply to a
// request sent while a dump's parts are still coming would split the dump (the netlink library groups a dump's parts
// until its DONE, and fails it when another reply comes between), so a dump runs alone on the socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Links } from '../../../src/kernel/links';
import { assertPrivateNetns, ip, uniqueName } from '../../helpers/net';

describe('Links dumps', () => {
  const names = Array.from({ length: 20 }, (_, i) => `${uniqueName('tmvL')}${i}`);
  let links: Links;

  beforeAll(() => {
    assertPrivateNetns();
    for (const [i, name] of names.entries()) {
      ip('link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
      ip('addr', 'add', `10.77.${i}.1/24`, 'dev', name);
    }
    links = new Links();
  });
  afterAll(() => {
    links?.close();
    for (const name of names) ip('link', 'del', name);
  });

  it('list every address and link, whole, while many single requests run beside them', async () => {
    const index = (await links.get(names[0]!))!.index;
    for (let round = 0; round < 20; round++) {
      const dumps = [links.addressesOf(index), links.list()];
      // Requests sent while the dumps' parts are coming in (each turn of the loop reads one part).
      const singles: Promise<unknown>[] = [];
      for (const name of names) {
        await new Promise((resolve) => setImmediate(resolve));
        singles.push(links.get(name));
      }
      const [addresses, all] = await Promise.all([...dumps, ...singles]);
      expect((addresses as Buffer[]).length).toBeGreaterThanOrEqual(1);
      expect((all as unknown[]).length).toBeGreaterThanOrEqual(names.length * 2);
    }
  });
});
