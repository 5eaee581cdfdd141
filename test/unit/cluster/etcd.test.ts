import { describe, expect, it } from 'vitest';
import { EtcdKv, checkSettings, describeEtcdFailure } from '../../../src/cluster/etcd';

const E = ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'];
const HEALTH = "'etcdctl --endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379 endpoint health'";

describe('etcd failures for people', () => {
  it('names etcd, the endpoints, what went wrong and what to check', () => {
    expect(describeEtcdFailure(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), E, 5000, 'taking K')).toBe(
      `taking K failed: etcd at ${E.join(',')} did not answer within 5000 ms (4 DEADLINE_EXCEEDED: Deadline exceeded); a majority of its members may be down (quorum lost) or unreachable: check ${HEALTH}. No address is handed out without etcd`,
    );
    expect(describeEtcdFailure(new Error('etcdserver: no leader'), E, 5000, 'taking K')).toMatch(/quorum lost/);
    expect(describeEtcdFailure(new Error('14 UNAVAILABLE: connect ECONNREFUSED 10.0.0.1:2379'), E, 5000, 'x')).toBe(
      `x failed: could not reach etcd at ${E.join(',')} (14 UNAVAILABLE: connect ECONNREFUSED 10.0.0.1:2379); check that its members run (a majority must, or quorum is lost) and that the endpoints are right: ${HEALTH}. No address is handed out without etcd`,
    );
    expect(
      describeEtcdFailure(new Error('Execution prevented because the circuit breaker is open'), E, 5000, 'x'),
    ).toMatch(/could not reach etcd .* \(no member answered its last calls\)/);
    expect(
      describeEtcdFailure(new Error('14 UNAVAILABLE: ssl3_get_record: wrong version number'), E, 5000, 'x'),
    ).toMatch(
      /^x failed: TLS with etcd at .* failed .*; check --etcd-ca, --etcd-cert and --etcd-key, and that the endpoints use https:\/\/$/,
    );
    expect(describeEtcdFailure(new Error('etcdserver: permission denied'), E, 5000, 'x')).toMatch(
      /refused the request .*check the client certificate's user and its role on the prefix/,
    );
    expect(describeEtcdFailure(new Error('something else'), E, 5000, 'x')).toBe(
      `x failed: etcd at ${E.join(',')} answered with an error (something else); check ${HEALTH}`,
    );
  });
});

describe('etcd settings', () => {
  it('refuses what cannot work, saying what to give', () => {
    expect(() => checkSettings({ endpoints: [] })).toThrow(
      'no etcd endpoint given: pass --etcd http://HOST:2379[,...]',
    );
    expect(() => checkSettings({ endpoints: ['10.0.0.1:2379'] })).toThrow(
      "etcd endpoint '10.0.0.1:2379' is not valid: give http://HOST:PORT or https://HOST:PORT",
    );
    expect(() => checkSettings({ endpoints: E, cert: '/c.pem' })).toThrow('--etcd-cert and --etcd-key go together');
    expect(() => checkSettings({ endpoints: E, cert: '/c.pem', key: '/k.pem' })).toThrow('--etcd-cert needs --etcd-ca');
    expect(() => new EtcdKv({ endpoints: E, ca: '/nonexistent/tmvE-ca.pem' })).toThrow(
      /^cannot read --etcd-ca \/nonexistent\/tmvE-ca.pem \(ENOENT.*\); give a PEM file readable by tsmacvlan$/,
    );
  });
});
