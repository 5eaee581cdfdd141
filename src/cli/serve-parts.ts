// What `tsmacvlan serve` loads once its socket listens (early-socket.ts says why): the server and everything below.
// etcd's client and the cluster table (with cockatiel) load only when etcd is configured: openCluster in serve.ts.
export { NetworkDriver } from '../driver/driver';
export { IpamService } from '../ipam/service';
export { Links } from '../kernel/links';
export { buildServer, requestsInFlight } from '../api/server';
export { instanceId, stateGroup } from '../state/instance';
export { migrateState } from '../state/migrate';
export { STATE_FILES } from '../inspect/state-formats';
export { crashPoint } from '../state/crash';
export { checkPatchedNetlink } from '../kernel/netlink-binding';
export { PacketTap } from '../kernel/packet-tap';
export { openDhcpClients } from '../dhcp/clients';
export { openDhcp6Clients } from '../dhcp6/clients';
export { Neighbourhood } from '../probe/neighbourhood';
export { RouterAdverts } from '../ra/router-adverts';
export { PoolPrefixes } from '../ra/pool-prefixes';
