// A state disk that fails (full, or EIO where a real disk here cannot be made to): a request whose write's outcome
// is unknown fails closed, with the file and the errno in its message, and no address is ever held twice, neither
// in memory nor after a restart on what the failed writes left.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IpamService } from '../../../src/ipam/service';
import { setIoFault } from '../../../src/state/faults';

const log = pino({ level: 'silent' });
const MAC = { 'com.docker.network.endpoint.macaddress': '02:42:0a:00:00:01' };
const SUBNET = '10.0.0.0/24';
let dir: string;
const services: IpamService[] = [];

function open(): IpamService {
  const service = new IpamService(dir, log);
  services.push(service);
  return service;
}

/** Whether `address` is held: a request for it is refused as in use (and a grant is given back). */
async function held(ipam: IpamService, poolId: string, address: string): Promise<boolean> {
  try {
    await ipam.requestAddress(poolId, address, MAC);
  } catch (err) {
    if (/already in use/.test((err as Error).message)) return true;
    throw err;
  }
  await ipam.releaseAddress(poolId, address);
  return false;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsmv-disk-faults-'));
});
afterEach(async () => {
  setIoFault(undefined);
  for (const service of services.splice(0)) await service.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a failing state disk', () => {
  it.each([
    ['ENOSPC', 'write'],
    ['EIO', 'write,sync,rename'],
  ])('%s: the take fails closed, naming the file and the errno; no address is held twice', async (errno, ops) => {
    let ipam = open();
    const { poolId } = await ipam.requestPool({ pool: SUBNET });
    const first = (await ipam.requestAddress(poolId, '', MAC)).split('/')[0];
    setIoFault(`${errno}:${ops}:/ipam/`);
    await expect(ipam.requestAddress(poolId, '', MAC)).rejects.toThrow(
      new RegExp(
        `could not save the IPAM state to ${dir}/ipam/10\\.0\\.0\\.0_24\\.jnl \\(${errno}: .*nothing was assigned`,
      ),
    );
    await expect(ipam.requestAddress(poolId, '10.0.0.77', MAC)).rejects.toThrow(new RegExp(errno));
    setIoFault(undefined);
    // The disk is back: the addresses the failed takes tried are free, and each is given once.
    const given = [first];
    for (let i = 0; i < 3; i++) given.push((await ipam.requestAddress(poolId, '', MAC)).split('/')[0]);
    expect(new Set(given).size).toBe(given.length);
    expect(await held(ipam, poolId, '10.0.0.77')).toBe(false);
    // A restart on what the failed writes left holds exactly what was answered.
    await ipam.close();
    ipam = open();
    for (const address of given) expect(await held(ipam, poolId, address)).toBe(true);
    expect(await held(ipam, poolId, '10.0.0.77')).toBe(false);
    const next = (await ipam.requestAddress(poolId, '', MAC)).split('/')[0];
    expect(given).not.toContain(next);
  });
});
