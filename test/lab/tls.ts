// Test certificates made with openssl: a CA, an etcd server certificate for one address, a client certificate.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TlsFiles {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

const OPENSSL = '/usr/bin/openssl';
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  const r = spawnSync(OPENSSL, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** Makes a CA named `name` and certificates signed by it in `dir`; the server's is valid for `hosts` (addresses). */
export function makeTls(dir: string, name: string, ...hosts: string[]): TlsFiles {
  if (!existsSync(OPENSSL)) throw new Error(`${OPENSSL} is missing: install Debian's openssl`);
  const file = (f: string) => join(dir, `${name}-${f}`);
  openssl([
    'req',
    '-x509',
    ...EC,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
    '-subj',
    `/CN=${name}-ca`,
    '-days',
    '2',
  ]);
  const sign = (who: string, cn: string, ext: string) => {
    writeFileSync(file(`${who}.ext`), ext);
    openssl(['req', ...EC, '-keyout', file(`${who}.key`), '-out', file(`${who}.csr`), '-subj', `/CN=${cn}`]);
    openssl([
      'x509',
      '-req',
      '-in',
      file(`${who}.csr`),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file(`${who}.pem`),
      '-days',
      '2',
      '-extfile',
      file(`${who}.ext`),
    ]);
  };
  const altNames = hosts.map((host) => `IP:${host}`).join(',');
  sign('server', 'etcd', `subjectAltName=${altNames}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  sign('client', 'tsmacvlan', 'extendedKeyUsage=clientAuth\n');
  return {
    ca: file('ca.pem'),
    serverCert: file('server.pem'),
    serverKey: file('server.key'),
    clientCert: file('client.pem'),
    clientKey: file('client.key'),
  };
}
