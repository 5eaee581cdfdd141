// Internal networks on a kernel that has the dummy module (this machine's has none, so there they use a veth pair).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { internalParentName } from '../../src/driver/parents';
import { link } from '../helpers/net';
import { startPlugin, type TestPlugin } from '../helpers/plugin';

describe('internal networks under a kernel with dummy', () => {
  let plugin: TestPlugin;
  beforeEach(async () => {
    plugin = await startPlugin();
  });
  afterEach(() => plugin.destroy());

  it('get a dummy parent of their own, removed with the network', async () => {
    const networkId = 'c'.repeat(64);
    expect((await plugin.call('NetworkDriver.CreateNetwork', { NetworkID: networkId, Options: {} })).status).toBe(200);
    expect(link(internalParentName(networkId))).toMatchObject({
      linkinfo: { info_kind: 'dummy' },
      ifalias: 'tsmacvlan:internal',
    });
    await plugin.call('NetworkDriver.DeleteNetwork', { NetworkID: networkId });
    expect(link(internalParentName(networkId))).toBeUndefined();
  });
});
