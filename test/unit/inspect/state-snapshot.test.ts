import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { IpamService } from '../../../src/ipam/service';
import { readState } from '../../../src/inspect/state-snapshot';
import { N1, N2, N3, networks } from '../../helpers/state-fixtures';

describe('readState', () => {
  const root = mkdtempSync(join(tmpdir(), 'st-state-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('creates nothing: a missing state dir is reported as missing and stays missing', () => {
    const dir = join(root, 'absent');
    expect(readState(dir)).toEqual({
      stateDir: dir,
      exists: false,
      networks: [],
      endpoints: [],
      pools: [],
      ranges: [],
      unreadable: [],
      format: { state: 'none', formats: null, writtenBy: null, message: 'no state yet' },
    });
    expect(existsSync(dir)).toBe(false);
  });

  it('reads records, ignores temp files, and lists files that are not valid JSON or not records', () => {
    const dir = join(root, 'state');
    mkdirSync(join(dir, 'networks'), { recursive: true });
    writeFileSync(join(dir, 'networks', `${N1}.json`), JSON.stringify(networks[0]));
    writeFileSync(join(dir, 'networks', `${N2}.json.tmp`), '{"half');
    writeFileSync(join(dir, 'networks', `${N3}.json`), '{"id":');
    writeFileSync(
      join(dir, 'networks', 'x.json'),
      JSON.stringify({ id: 'x', parent: 'eth1', mode: 'bridgy', ownsParent: false }),
    );
    const state = readState(dir);
    expect(state.exists).toBe(true);
    expect(state.networks).toEqual([networks[0]]);
    expect(state.endpoints).toEqual([]); // no endpoints dir yet: nothing recorded, not an error
    expect(state.unreadable).toEqual([
      { file: join(dir, 'networks', `${N3}.json`), error: expect.stringMatching(/^not valid JSON/) },
      { file: join(dir, 'networks', 'x.json'), error: "not a record: mode 'bridgy' is not a macvlan mode" },
    ]);
  });
});

describe('address pools', () => {
  const root = mkdtempSync(join(tmpdir(), 'st-pools-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const files = () =>
    Object.fromEntries(readdirSync(join(root, 'ipam')).map((f) => [f, readFileSync(join(root, 'ipam', f), 'utf8')]));

  it('are read from the IPAM journals exactly as the plugin lists them, without the rewrite its start does', async () => {
    const ipam = new IpamService(root, pino({ level: 'silent' }));
    const v4 = await ipam.requestPool({ pool: '10.9.0.0/24', subPool: '10.9.0.128/25' });
    await ipam.requestPool({ pool: '10.9.0.0/24', subPool: '10.9.0.128/25' }); // a second network on the same pool
    const v6 = await ipam.requestPool({ pool: 'fd09::/64', v6: true });
    await ipam.requestAddress(v4.poolId, '10.9.0.1', { RequestAddressType: 'com.docker.network.gateway' });
    await ipam.requestAddress(v4.poolId, undefined, {});
    await ipam.requestAddress(v6.poolId, undefined, {});
    const listed = ipam.listPools();
    await ipam.close();
    appendFileSync(join(root, 'ipam', readdirSync(join(root, 'ipam'))[0]), '{"t":"addr'); // a write cut short by a crash
    const before = files();

    const { pools, unreadable } = readState(root);
    expect(unreadable).toEqual([]);
    expect(pools).toEqual(
      listed.map((p) => ({
        poolId: p.poolId,
        pool: p.pool,
        subPool: p.subPool ?? null,
        v6: p.v6,
        allocated: p.allocated,
        refs: p.refs,
        routerPrefix: null,
      })),
    );
    expect(pools.find((p) => p.poolId === v4.poolId)).toMatchObject({
      pool: '10.9.0.0/24',
      subPool: '10.9.0.128/25',
      v6: false,
      allocated: 2,
      refs: 2,
    });
    expect(files()).toEqual(before); // the torn line is still there: status compacts nothing
  });

  it('a journal the plugin could not load is reported as unreadable', () => {
    writeFileSync(join(root, 'ipam', '10.10.0.0_24.jnl'), 'not json\n');
    writeFileSync(join(root, 'ipam', '10.11.0.0_24.jnl'), '{"t":"pool","p":1}\n');
    const { unreadable } = readState(root);
    expect(unreadable).toEqual([
      { file: join(root, 'ipam', '10.10.0.0_24.jnl'), error: expect.stringContaining('line 1 is not valid JSON') },
      {
        file: join(root, 'ipam', '10.11.0.0_24.jnl'),
        error: expect.stringContaining('does not start with a subnet header; fix or remove it'),
      },
    ]);
  });
});
