// How a plugin reaches its cluster's etcd, as the command line gives it; checked before anything connects. Apart from
// etcd.ts, so that parsing the flags loads no etcd client.
export interface EtcdSettings {
  endpoints: string[];
  /** Key prefix shared by every instance of one cluster; default /tsmacvlan. */
  prefix?: string;
  /** PEM files: the CA that signed the members' certificates, and this client's certificate and key (mutual TLS). */
  ca?: string;
  cert?: string;
  key?: string;
  /** Deadline of each call, retries included; default 5000 ms. */
  timeoutMs?: number;
}

export function checkSettings(settings: EtcdSettings): void {
  if (settings.endpoints.length === 0) throw new Error('no etcd endpoint given: pass --etcd http://HOST:2379[,...]');
  for (const endpoint of settings.endpoints) {
    if (!/^https?:\/\/[^/\s]+$/.test(endpoint)) {
      throw new Error(`etcd endpoint '${endpoint}' is not valid: give http://HOST:PORT or https://HOST:PORT`);
    }
  }
  if ((settings.cert === undefined) !== (settings.key === undefined)) {
    throw new Error('--etcd-cert and --etcd-key go together: give both, or neither');
  }
  if (settings.cert !== undefined && settings.ca === undefined) {
    throw new Error('--etcd-cert needs --etcd-ca (the CA that signed the etcd members)');
  }
}
