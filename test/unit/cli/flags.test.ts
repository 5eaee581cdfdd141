import { afterEach, describe, expect, it } from 'vitest';
import { ETCD_FLAGS, etcdSettings, parseDoctorArgs, parseFlags, parseStatusArgs } from '../../../src/cli/flags';
import { synopsis, UsageError } from '../../../src/cli/usage';

describe('parseStatusArgs', () => {
  it('takes --socket (for the driver name), --state-dir and --json', () => {
    expect(parseStatusArgs(['--state-dir', '/d', '--socket=/p/x.sock', '--json'])).toEqual({
      socket: '/p/x.sock',
      stateDir: '/d',
      json: true,
      found: 'given',
    });
    expect(parseStatusArgs(['--state-dir=/e'])).toMatchObject({ stateDir: '/e', json: false });
    expect(() => parseStatusArgs(['--parent', 'eth1'])).toThrow("unknown or incomplete argument '--parent'");
  });
});

describe('parseDoctorArgs', () => {
  it('takes repeated --parent, --socket, --state-dir (also as --flag=value) and --json', () => {
    expect(
      parseDoctorArgs(['--parent', 'eth1', '--parent=eth2.10', '--socket', '/s.sock', '--state-dir=/d', '--json']),
    ).toEqual({
      parents: ['eth1', 'eth2.10'],
      socket: '/s.sock',
      stateDir: '/d',
      json: true,
      found: 'given',
    });
  });
  it('refuses unknown and incomplete arguments as usage errors, with the usage', () => {
    let error: unknown;
    try {
      parseDoctorArgs(['--parnet', 'eth1']);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect(error).toMatchObject({ message: "unknown or incomplete argument '--parnet'", usage: synopsis('doctor') });
    expect(() => parseDoctorArgs(['--parent'])).toThrow(/'--parent'/);
    expect(() => parseDoctorArgs(['--json=yes'])).toThrow(/'--json'/);
  });
});

describe('etcdSettings', () => {
  const parse = (args: string[]) => etcdSettings(parseFlags(args, { values: ETCD_FLAGS }, 'U'));
  const saved = { ...process.env };
  afterEach(() => {
    for (const name of Object.keys(process.env)) if (name.startsWith('TSMACVLAN_ETCD')) delete process.env[name];
    Object.assign(process.env, saved);
  });

  it('is undefined without --etcd; takes flags, else the environment (empty values are unset)', () => {
    expect(parse([])).toBeUndefined();
    expect(parse(['--etcd', 'http://a:2379,http://b:2379', '--etcd-prefix=/c1'])).toEqual({
      endpoints: ['http://a:2379', 'http://b:2379'],
      prefix: '/c1',
    });
    process.env.TSMACVLAN_ETCD = 'https://a:2379';
    process.env.TSMACVLAN_ETCD_CA = '/etc/tsmacvlan/ca.pem';
    process.env.TSMACVLAN_ETCD_CERT = '/etc/tsmacvlan/c.pem';
    process.env.TSMACVLAN_ETCD_KEY = '/etc/tsmacvlan/k.pem';
    process.env.TSMACVLAN_ETCD_PREFIX = '';
    expect(parse(['--etcd-key', '/k2.pem'])).toEqual({
      endpoints: ['https://a:2379'],
      ca: '/etc/tsmacvlan/ca.pem',
      cert: '/etc/tsmacvlan/c.pem',
      key: '/k2.pem',
    });
  });

  it('refuses settings that cannot work as usage errors, saying what to give', () => {
    expect(() => parse(['--etcd-ca', '/ca.pem'])).toThrow(UsageError);
    expect(() => parse(['--etcd', 'a:2379'])).toThrow(UsageError);
    expect(() => parse(['--etcd-ca', '/ca.pem'])).toThrow('--etcd-ca needs --etcd (or TSMACVLAN_ETCD)');
    expect(() => parse(['--etcd', 'a:2379'])).toThrow(/endpoint 'a:2379' is not valid: give http:\/\/HOST:PORT/);
    expect(() => parse(['--etcd', 'https://a:2379', '--etcd-cert', '/c.pem'])).toThrow(/go together/);
  });
});
