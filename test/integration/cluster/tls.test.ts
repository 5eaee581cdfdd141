// The cluster table over TLS with client certificates, and what a person sees when the TLS settings are wrong.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster } from '../../lab/etcd';
import { type TlsFiles, makeTls } from '../../lab/tls';
import { PREFIX, Tables, bounds, cidr } from './setup';

const dir = mkdtempSync(join(tmpdir(), `${PREFIX}-tls-`));
const good: TlsFiles = makeTls(dir, 'good', '127.0.0.1');
const other: TlsFiles = makeTls(dir, 'other', '127.0.0.1');
const cluster = EtcdCluster.onHost(`${PREFIX}s`, '127.0.0.1', 23750, 1, {
  ca: good.ca,
  cert: good.serverCert,
  key: good.serverKey,
});
const tables = new Tables(() => ({ endpoints: cluster.endpoints, prefix: `/${PREFIX}/tls`, timeoutMs: 2000 }));

beforeAll(async () => {
  await cluster.start();
}, 60_000);
afterAll(async () => {
  await tables.closeAll();
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('cluster table over TLS', () => {
  const subnet = cidr('10.74.0.0/24');
  const { lo, hi } = bounds(subnet);

  it('works with the CA and a client certificate', async () => {
    const { table } = tables.open('tlsA', undefined, { ca: good.ca, cert: good.clientCert, key: good.clientKey });
    expect(await table.take({ subnet, lo, hi, kind: 'container', ref: 'c' })).toBeGreaterThanOrEqual(lo);
  });

  it('says TLS failed, and what to check, with the wrong CA or without a client certificate', async () => {
    for (const settings of [
      { ca: other.ca, cert: good.clientCert, key: good.clientKey },
      { ca: good.ca, cert: other.clientCert, key: other.clientKey },
      { ca: good.ca },
    ]) {
      const { table } = tables.open('tlsB', undefined, settings);
      const err = await table.take({ subnet, lo, hi, kind: 'container', ref: 'c' }).then(
        () => undefined,
        (e: Error) => e,
      );
      console.log(`TLS with ${JSON.stringify(settings).replace(new RegExp(dir, 'g'), '')}: ${err?.message}`);
      expect(err?.message).toMatch(/^reading \/tmvE\/tls\/v1\/subnets\/10\.74\.0\.0_24\/addresses\/ failed: /);
      expect(err?.message).toMatch(
        /TLS with etcd at https:\/\/127\.0\.0\.1:23750 failed .*check --etcd-ca, --etcd-cert and --etcd-key/,
      );
    }
  });
});
