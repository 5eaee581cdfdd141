import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ENDPOINT_RECORD_FORMAT, NETWORK_RECORD_FORMAT } from '../../../src/driver/record-formats';
import { networkRecordProblem } from '../../../src/driver/network-options';
import { readIntents } from '../../../src/cluster/intents';
import { STATE_FILES } from '../../../src/inspect/state-formats';
import { MARKER, currentFormats, migrateState, readMarker, stateFormatOf } from '../../../src/state/migrate';
import { upgradeRecord } from '../../../src/state/record-format';
import { readRecords, recordFiles, type Unreadable } from '../../../src/state/record-store';
import { softwareVersion } from '../../../src/state/software-version';

const silent = pino({ level: 'silent' });
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const NETWORK = { id: 'n1', parent: 'eth1', ownsParent: false, mode: 'bridge', internal: false };
const ENDPOINT = { id: 'e1', networkId: 'n1', mac: '02:42:0a:00:00:05', ipv4: '10.0.0.5/24' };

/** A state dir as tsmacvlan 0.1.0 left it: records without a format, an intent log without a header, no format.json. */
function stateOf010(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsmv-migrate-'));
  dirs.push(dir);
  for (const sub of ['networks', 'endpoints', 'cluster']) mkdirSync(join(dir, sub));
  writeFileSync(join(dir, 'instance'), 'f'.repeat(32) + '\n');
  writeFileSync(join(dir, 'networks', 'n1.json'), JSON.stringify(NETWORK));
  writeFileSync(join(dir, 'endpoints', 'e1.json'), JSON.stringify(ENDPOINT));
  writeFileSync(
    join(dir, 'cluster', 'cluster-intents.log'),
    '{"t":"take","at":"a1","subnet":"10.0.0.0/24"}\n{"t":"release","id":"r1","subnet":"10.0.0.0/24","address":"10.0.0.9","ref":"p"}\n',
  );
  return dir;
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

describe('record formats', () => {
  it('every format has an upgrade into each of its versions', () => {
    for (const format of [NETWORK_RECORD_FORMAT, ENDPOINT_RECORD_FORMAT])
      for (let v = 2; v <= format.version; v++)
        expect(typeof format.upgrades[v], `${format.name} ${v}`).toBe('function');
  });

  it('brings an older record up to date in memory; refuses a newer one, naming both formats', () => {
    expect(upgradeRecord(NETWORK_RECORD_FORMAT, { ...NETWORK })).toEqual({ kind: 'macvlan', ...NETWORK });
    expect(upgradeRecord(NETWORK_RECORD_FORMAT, { format: 2, ...NETWORK })).toEqual({ kind: 'macvlan', ...NETWORK });
    const ipvlan = { ...NETWORK, kind: 'ipvlan', mode: 'l2', flag: 'bridge' };
    expect(upgradeRecord(NETWORK_RECORD_FORMAT, { format: 3, ...ipvlan })).toEqual(ipvlan);
    expect(upgradeRecord(NETWORK_RECORD_FORMAT, { format: 'two', ...NETWORK })).toMatch(
      /'format' is not a format version/,
    );
    expect(() => upgradeRecord(NETWORK_RECORD_FORMAT, { format: 9, ...NETWORK })).toThrow(
      `this network record is in format 9, newer than this tsmacvlan (${softwareVersion()}) reads (up to format 3)`,
    );
  });

  it('a format is one upgrade function: a field older records lack, with the value they meant', () => {
    // What the ipvlan change did to network records (docs/state.md): format 3 adds `kind`, absent before = macvlan.
    const kind = { format: NETWORK_RECORD_FORMAT, check: networkRecordProblem };
    const dir = stateOf010();
    writeFileSync(
      join(dir, 'networks', 'n2.json'),
      JSON.stringify({ format: 3, ...NETWORK, kind: 'ipvlan', mode: 'l2', flag: 'bridge', id: 'n2' }),
    );
    const unreadable: Unreadable[] = [];
    const read = readRecords(join(dir, 'networks'), kind, unreadable);
    expect(unreadable).toEqual([]);
    expect(read.get('n1')).toEqual({ kind: 'macvlan', ...NETWORK });
    expect(read.get('n2')).toEqual({ ...NETWORK, kind: 'ipvlan', mode: 'l2', flag: 'bridge', id: 'n2' });
    const files = [recordFiles('network-record', 'networks', kind)];
    expect(migrateState(dir, files, silent)).toBe(1);
    expect(json(join(dir, 'networks', 'n1.json'))).toEqual({ format: 3, kind: 'macvlan', ...NETWORK });
    expect(readMarker(dir)?.formats).toEqual({ 'network-record': 3 });
  });
});

describe('migrating a state dir', () => {
  it('rewrites every file of an older format, then writes format.json; a second start rewrites nothing', () => {
    const dir = stateOf010();
    const intentsBefore = readIntents(join(dir, 'cluster', 'cluster-intents.log'), silent);
    expect(stateFormatOf(dir, STATE_FILES)).toMatchObject({ state: 'older', formats: null });
    expect(migrateState(dir, STATE_FILES, silent)).toBe(3);
    expect(json(join(dir, 'networks', 'n1.json'))).toEqual({ format: 3, kind: 'macvlan', ...NETWORK });
    expect(json(join(dir, 'endpoints', 'e1.json'))).toEqual({ format: 3, ...ENDPOINT });
    const intents = readFileSync(join(dir, 'cluster', 'cluster-intents.log'), 'utf8');
    expect(intents.split('\n')[0]).toBe('{"t":"intents","format":3}');
    expect(readIntents(join(dir, 'cluster', 'cluster-intents.log'), silent)).toEqual(intentsBefore);
    expect(readFileSync(join(dir, 'instance'), 'utf8')).toBe('f'.repeat(32) + '\n'); // format 1, unchanged
    expect(readMarker(dir)).toEqual({ formats: currentFormats(STATE_FILES), writtenBy: softwareVersion() });
    expect(stateFormatOf(dir, STATE_FILES)).toMatchObject({ state: 'current' });
    expect(readdirSync(join(dir, 'networks'))).toEqual(['n1.json']); // no temp file left
    expect(migrateState(dir, STATE_FILES, silent)).toBe(0);
  });

  it('resumes a migration cut short: files already in the new format are skipped', () => {
    const dir = stateOf010();
    writeFileSync(join(dir, 'networks', 'n1.json'), JSON.stringify({ format: 3, kind: 'macvlan', ...NETWORK }));
    expect(migrateState(dir, STATE_FILES, silent)).toBe(2);
    expect(json(join(dir, 'networks', 'n1.json'))).toEqual({ format: 3, kind: 'macvlan', ...NETWORK });
  });

  it('creates a state dir that does not exist, with format.json', () => {
    const dir = join(stateOf010(), 'new');
    expect(migrateState(dir, STATE_FILES, silent)).toBe(0);
    expect(readdirSync(dir)).toEqual([MARKER]);
  });

  it('takes a directory with no state file in it for a new state: the propagated mount Docker makes, its tls/', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsmv-migrate-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'tls'));
    writeFileSync(join(dir, 'tls', 'ca.pem'), 'pem');
    expect(stateFormatOf(dir, STATE_FILES)).toMatchObject({ state: 'none' });
    const warned: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => warned.push(line) });
    expect(migrateState(dir, STATE_FILES, log)).toBe(0);
    expect(warned.join('')).not.toContain('migrated');
    expect(readMarker(dir)).toEqual({ formats: currentFormats(STATE_FILES), writtenBy: softwareVersion() });
  });

  it('refuses a state a newer version wrote, naming both versions and what to do, and changes nothing', () => {
    const dir = stateOf010();
    const newer = { formats: { ...currentFormats(STATE_FILES), 'network-record': 4 }, writtenBy: '0.9.0' };
    writeFileSync(join(dir, MARKER), JSON.stringify(newer));
    const refusal =
      `the state in ${dir} was written by tsmacvlan 0.9.0, in formats newer than this tsmacvlan (${softwareVersion()}) ` +
      `reads: network-record format 4 (this version reads up to 3). Run tsmacvlan 0.9.0 or newer on it`;
    expect(() => migrateState(dir, STATE_FILES, silent)).toThrow(refusal);
    expect(json(join(dir, 'networks', 'n1.json'))).toEqual(NETWORK); // untouched
    expect(stateFormatOf(dir, STATE_FILES)).toMatchObject({ state: 'newer', writtenBy: '0.9.0' });
    // A kind of file this version has never heard of is refused the same way.
    writeFileSync(
      join(dir, MARKER),
      JSON.stringify({ formats: { ...currentFormats(STATE_FILES), leases: 1 }, writtenBy: '1.0.0' }),
    );
    expect(() => migrateState(dir, STATE_FILES, silent)).toThrow(/leases files, which this version does not know/);
  });

  it('refuses a single file of a newer format even where format.json does not say so', () => {
    const dir = stateOf010();
    writeFileSync(join(dir, 'endpoints', 'e1.json'), JSON.stringify({ format: 7, ...ENDPOINT }));
    expect(() => migrateState(dir, STATE_FILES, silent)).toThrow(
      /endpoints\/e1\.json is endpoint-record format 7, newer than/,
    );
    expect(existsSync(join(dir, MARKER))).toBe(false);
    expect(json(join(dir, 'networks', 'n1.json'))).toEqual(NETWORK); // nothing rewritten before the refusal
  });
});
