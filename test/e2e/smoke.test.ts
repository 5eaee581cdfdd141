// Canary for the e2e harness itself, using Docker's BUILT-IN macvlan driver:
// if this fails, the environment (dockerd, image, switch topology) is broken,
// not the plugin. Needs root and a lab (test/lab/in-lab.sh).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, dockerOk, ping, removeDockerObjects, runSleeper, uniqueName } from './docker';
import { cleanupLeftovers, createSwitch, destroyAllSwitches } from './topology';

const PREFIX = 'tsmv-smoke-';

async function macvlanNet(parent: string, subnet: string, mode: 'bridge' | 'private' | 'vepa'): Promise<string> {
  const name = uniqueName(PREFIX);
  await dockerOk([
    'network',
    'create',
    '-d',
    'macvlan',
    '-o',
    `parent=${parent}`,
    '-o',
    `macvlan_mode=${mode}`,
    '--subnet',
    subnet,
    name,
  ]);
  return name;
}

describe('e2e harness with the built-in macvlan driver', () => {
  beforeAll(async () => {
    await dockerOk(['image', 'inspect', '-f', '{{.Id}}', TEST_IMAGE]).catch((err: Error) => {
      throw new Error(`the lab's engine has no test image (test/lab/in-lab.sh imports it): ${err.message}`);
    });
  });
  afterEach(async () => {
    await removeDockerObjects(PREFIX);
    await destroyAllSwitches();
  });
  afterAll(async () => {
    await removeDockerObjects(PREFIX);
    await destroyAllSwitches();
  });

  it('bridge mode: siblings reach each other and the switch through a veth parent', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.5' });
    const net = await macvlanNet(sw.parent, sw.subnet, 'bridge');
    const a = uniqueName(PREFIX);
    const b = uniqueName(PREFIX);
    await runSleeper(a, { network: net, ip: '10.231.5.10' });
    await runSleeper(b, { network: net, ip: '10.231.5.11' });
    expect(await ping(a, '10.231.5.11')).toBe(true);
    expect(await ping(b, '10.231.5.10')).toBe(true);
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    expect(await ping(b, sw.bridgeIp)).toBe(true);
    const fromSwitch = await sw.exec(['ping', '-c', '1', '-W', '2', '10.231.5.10'], { allowFail: true });
    expect(fromSwitch.code).toBe(0);
  });

  it('private mode: siblings are isolated, the switch is reachable', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.6' });
    const net = await macvlanNet(sw.parent, sw.subnet, 'private');
    const a = uniqueName(PREFIX);
    const b = uniqueName(PREFIX);
    await runSleeper(a, { network: net, ip: '10.231.6.10' });
    await runSleeper(b, { network: net, ip: '10.231.6.11' });
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    expect(await ping(b, sw.bridgeIp)).toBe(true);
    expect(await ping(a, '10.231.6.11', { timeoutSec: 1 })).toBe(false);
    // Even with a hairpinning switch: private mode drops frames from siblings.
    await sw.setHairpin(true);
    expect(await ping(a, '10.231.6.11', { timeoutSec: 1 })).toBe(false);
  });

  it('vepa mode: siblings talk only through a hairpinning switch', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.7' });
    const net = await macvlanNet(sw.parent, sw.subnet, 'vepa');
    const a = uniqueName(PREFIX);
    const b = uniqueName(PREFIX);
    await runSleeper(a, { network: net, ip: '10.231.7.10' });
    await runSleeper(b, { network: net, ip: '10.231.7.11' });
    expect(await ping(a, sw.bridgeIp)).toBe(true);
    expect(await ping(a, '10.231.7.11', { timeoutSec: 1 })).toBe(false);
    await sw.setHairpin(true);
    expect(await ping(a, '10.231.7.11', { count: 2, timeoutSec: 2 })).toBe(true);
  });

  it('cleanupLeftovers removes an abandoned switch', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.8' });
    const removed = await cleanupLeftovers();
    expect(removed.netns).toContain(sw.nsName);
    await sw.destroy(); // idempotent on already-removed objects
  });
});
