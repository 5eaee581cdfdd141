// The lab and its switches keep every test packet on this machine: the lab's namespace has no way out, and each
// switch gives the host a local route to its subnet before any test pings into it.
import { afterAll, describe, expect, it } from 'vitest';
import { run } from './docker';
import { createSwitch, destroyAllSwitches, localRouteDev } from './topology';

describe('the lab and its test switches', () => {
  afterAll(destroyAllSwitches);

  it('the lab namespace has no default route and no link of the host', async () => {
    expect((await run('ip', ['-4', 'route', 'show', 'default'])).stdout.trim()).toBe('');
    expect((await run('ip', ['-6', 'route', 'show', 'default'])).stdout.trim()).toBe('');
    expect((await run('ip', ['-o', 'link', 'show', 'eth0'], { allowFail: true })).code).not.toBe(0);
    expect(await localRouteDev('198.51.100.1')).toBeUndefined(); // unrouted: a send fails here
  });

  it('a switch routes its IPv4 and IPv6 subnets locally through its parent, which holds an address in each', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.9', ipv6Prefix: 'fd31:231:9::' });
    expect(sw.hostIp).toBe('10.231.9.254');
    for (const address of ['10.231.9.1', '10.231.9.10', '10.231.9.200', 'fd31:231:9::1', 'fd31:231:9::10'])
      expect(await localRouteDev(address), address).toBe(sw.parent);
    const addresses = (await run('ip', ['-o', 'addr', 'show', 'dev', sw.parent])).stdout;
    expect(addresses).toContain('inet 10.231.9.254/24');
    expect(addresses).toContain('inet6 fd31:231:9::fe/64');
    // The switch answers from its side: the route is not only there, it reaches the switch.
    expect((await run('ping', ['-c', '1', '-W', '2', sw.bridgeIp], { allowFail: true })).code).toBe(0);
    await sw.destroy();
    expect(await localRouteDev('10.231.9.10')).toBeUndefined();
  });
});
