import { afterEach, describe, expect, it } from 'vitest';
import { metricsAddress, parseListenAddress } from '../../../src/cli/serve-metrics';
import { parseFlags } from '../../../src/cli/flags';

describe('--metrics-address', () => {
  afterEach(() => delete process.env.TSMACVLAN_METRICS_ADDRESS);

  it('takes HOST:PORT, [IPv6]:PORT and :PORT (every address)', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListenAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseListenAddress('node1.lan:80')).toEqual({ host: 'node1.lan', port: 80 });
    expect(parseListenAddress(':9464')).toEqual({ host: undefined, port: 9464 });
  });

  it.each([
    '127.0.0.1',
    '9464',
    '127.0.0.1:0',
    '127.0.0.1:65536',
    '::1:9464',
    'http://127.0.0.1:9464',
    '127.0.0.1:94x',
  ])("refuses '%s', saying what to give", (text) => {
    expect(() => parseListenAddress(text)).toThrow(
      `--metrics-address '${text}' is not HOST:PORT: give e.g. 127.0.0.1:9464 (this host's loopback), [::1]:9464, or :9464 (every address of the host)`,
    );
  });

  it('comes from the flag, else TSMACVLAN_METRICS_ADDRESS; empty or unset is off', () => {
    const flags = (args: string[]) => parseFlags(args, { values: ['--metrics-address'] }, 'usage');
    expect(metricsAddress(flags([]))).toBeUndefined();
    process.env.TSMACVLAN_METRICS_ADDRESS = '';
    expect(metricsAddress(flags([]))).toBeUndefined();
    process.env.TSMACVLAN_METRICS_ADDRESS = '127.0.0.1:9000';
    expect(metricsAddress(flags([]))).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(metricsAddress(flags(['--metrics-address=:9100']))).toEqual({ host: undefined, port: 9100 });
  });
});
