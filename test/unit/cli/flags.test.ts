import { describe, expect, it } from 'vitest';
import { parseDoctorArgs, parseStatusArgs } from '../../../src/cli/flags';

describe('parseStatusArgs', () => {
  it('takes --socket (for the driver name), --state-dir and --json', () => {
    expect(parseStatusArgs(['--state-dir', '/d', '--socket=/p/x.sock', '--json'], 'U')).toEqual({
      socket: '/p/x.sock',
      stateDir: '/d',
      json: true,
    });
    expect(parseStatusArgs(['--state-dir=/e'], 'U')).toMatchObject({ stateDir: '/e', json: false });
    expect(() => parseStatusArgs(['--parent', 'eth1'], 'U')).toThrow(/unknown or incomplete argument '--parent'\nU/);
  });
});

describe('parseDoctorArgs', () => {
  it('takes repeated --parent, --socket, --state-dir (also as --flag=value) and --json', () => {
    expect(
      parseDoctorArgs(
        ['--parent', 'eth1', '--parent=eth2.10', '--socket', '/s.sock', '--state-dir=/d', '--json'],
        'USAGE',
      ),
    ).toEqual({
      parents: ['eth1', 'eth2.10'],
      socket: '/s.sock',
      stateDir: '/d',
      json: true,
    });
  });
  it('refuses unknown and incomplete arguments with the usage', () => {
    expect(() => parseDoctorArgs(['--parnet', 'eth1'], 'USAGE')).toThrow(
      /unknown or incomplete argument '--parnet'\nUSAGE/,
    );
    expect(() => parseDoctorArgs(['--parent'], 'USAGE')).toThrow(/'--parent'/);
    expect(() => parseDoctorArgs(['--json=yes'], 'USAGE')).toThrow(/'--json'/);
  });
});
