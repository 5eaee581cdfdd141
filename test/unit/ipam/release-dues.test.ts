// Releases Docker owes: the network driver deleted an endpoint, Docker's ReleaseAddress did not come (a crash cut
// it short), and the IPAM releases the address itself after the grace period; never one Docker released meanwhile.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { releaseGraceMs } from '../../../src/ipam/release-dues';
import { TimedQueue } from '../../../src/state/timed-queue';
import { IpamService } from '../../../src/ipam/service';

const log = pino({ level: 'silent' });
const MAC = { 'com.docker.network.endpoint.macaddress': '02:42:0a:00:00:01' };
const SUBNET = '10.0.0.0/24';
let dir: string;
const services: IpamService[] = [];

/** A service whose dues fall after `graceSeconds` (the env var is read when it is made). */
function open(graceSeconds = 1): IpamService {
  process.env.TSMACVLAN_RELEASE_GRACE_S = String(graceSeconds);
  try {
    const service = new IpamService(dir, log);
    services.push(service);
    return service;
  } finally {
    delete process.env.TSMACVLAN_RELEASE_GRACE_S;
  }
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const held = async (ipam: IpamService, poolId: string, address: string) =>
  ipam.requestAddress(poolId, address, MAC).then(
    async () => (await ipam.releaseAddress(poolId, address), false),
    (err: Error) => (/already in use/.test(err.message) ? true : Promise.reject(err)),
  );

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsmv-dues-'));
});
afterEach(async () => {
  for (const service of services.splice(0)) await service.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('releases due', () => {
  it('an address whose endpoint is gone and whose release never comes is released after the grace period', async () => {
    const ipam = open();
    const { poolId } = await ipam.requestPool({ pool: SUBNET });
    const address = (await ipam.requestAddress(poolId, '', MAC)).split('/')[0];
    await ipam.releaseDue(SUBNET, address, 'local');
    expect(readFileSync(join(dir, 'ipam', '10.0.0.0_24.jnl'), 'utf8')).toMatch(
      new RegExp(`\\{"t":"due","a":"${address}","p":1,"by":\\d+\\}\\n`),
    );
    expect(await held(ipam, poolId, address)).toBe(true);
    await sleep(1500);
    expect(await held(ipam, poolId, address)).toBe(false);
  });

  it('survives a restart: the due is in the journal and falls at its time', async () => {
    let ipam = open(2);
    const { poolId } = await ipam.requestPool({ pool: SUBNET });
    const address = (await ipam.requestAddress(poolId, '', MAC)).split('/')[0];
    await ipam.releaseDue(SUBNET, address, 'local');
    await ipam.close(); // as a kill would leave it: the journal as written
    ipam = open(60); // the grace of the run that noted it counts, not this one's
    expect(await held(ipam, poolId, address)).toBe(true);
    await sleep(2500);
    expect(await held(ipam, poolId, address)).toBe(false);
  });

  it("Docker's release, when it comes, ends the due: the address taken again is never released by it", async () => {
    const ipam = open();
    const { poolId } = await ipam.requestPool({ pool: SUBNET });
    const address = (await ipam.requestAddress(poolId, '', MAC)).split('/')[0];
    await ipam.releaseDue(SUBNET, address, 'local');
    await ipam.releaseAddress(poolId, address);
    expect(await ipam.requestAddress(poolId, address, MAC)).toBe(`${address}/24`); // the next container's
    await sleep(1500);
    expect(await held(ipam, poolId, address)).toBe(true);
  });

  it('notes nothing for a gateway, an address it does not hold, a subnet not its own, or a network on another IPAM', async () => {
    const ipam = open();
    const { poolId } = await ipam.requestPool({ pool: SUBNET });
    await ipam.requestAddress(poolId, '10.0.0.1', { RequestAddressType: 'com.docker.network.gateway' });
    const address = (await ipam.requestAddress(poolId, '', MAC)).split('/')[0];
    await ipam.releaseDue(SUBNET, '10.0.0.1', 'local');
    await ipam.releaseDue(SUBNET, '10.0.0.9', 'local');
    await ipam.releaseDue('10.9.0.0/24', '10.9.0.5', 'local'); // a subnet this IPAM has no pool of
    // A network on another IPAM with an address one of our pools holds too: Docker's own IPAM names its spaces
    // LocalDefault and GlobalDefault; a network record older than the address space's note has none.
    await ipam.releaseDue(SUBNET, address, 'LocalDefault');
    await ipam.releaseDue(SUBNET, address, undefined);
    expect(readFileSync(join(dir, 'ipam', '10.0.0.0_24.jnl'), 'utf8')).not.toContain('"due"');
    await sleep(1500);
    expect(await held(ipam, poolId, '10.0.0.1')).toBe(true);
    expect(await held(ipam, poolId, address)).toBe(true);
  });

  it('falls due in order, whatever order they were added in; one removed or stopped never does', async () => {
    const fired: string[] = [];
    const failed: string[] = [];
    const dues = new TimedQueue<string>(
      (item) => (item === 'bad' ? Promise.reject(new Error(item)) : void fired.push(item)),
      (_err, item) => failed.push(item),
    );
    const now = Date.now();
    for (const [item, ms] of [
      ['c', 300],
      ['a', 100],
      ['bad', 150],
      ['gone', 150],
      ['b', 200],
      ['late', 5000],
    ] as const)
      dues.add(item, now + ms);
    dues.remove('gone');
    expect(dues.values()).toEqual(['a', 'bad', 'b', 'c', 'late']);
    await sleep(600);
    dues.stop();
    expect(fired).toEqual(['a', 'b', 'c']);
    expect(failed).toEqual(['bad']);
    expect(dues.values()).toEqual(['late']);
  });

  it('takes its grace from TSMACVLAN_RELEASE_GRACE_S, 120 s by default, and refuses what is not a duration', () => {
    expect(releaseGraceMs(undefined)).toBe(120_000);
    expect(releaseGraceMs('300')).toBe(300_000);
    expect(() => releaseGraceMs('soon')).toThrow(/TSMACVLAN_RELEASE_GRACE_S=soon is not a whole number of seconds/);
    expect(() => releaseGraceMs('100000')).toThrow(/from 1 to 86400/);
  });
});
