// What `tsmacvlan --help` and `tsmacvlan COMMAND --help` print. docs/cli.md is the long form (a test keeps every flag
// here in it).

/** What the user typed cannot be run as it is: exit status 2, and nothing was done. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command's synopsis, printed under the message. */
    readonly usage?: string,
  ) {
    super(message);
  }
}

export const COMMANDS = ['serve', 'doctor', 'status', 'gc', 'uninstall'] as const;
export type Command = (typeof COMMANDS)[number];

const SYNOPSIS: Record<Command, string[]> = {
  serve: ['tsmacvlan serve [--socket PATH] [--state-dir DIR] [--log-level LEVEL] [--metrics-address HOST:PORT] [ETCD]'],
  doctor: ['tsmacvlan doctor [--parent IF]... [--json] [WHERE] [ETCD]'],
  status: ['tsmacvlan status [--json] [WHERE] [ETCD]'],
  gc: [
    'tsmacvlan gc [--dry-run] [--json] [WHERE]',
    'tsmacvlan gc --cluster --forget-instance ID [--dry-run] [--json] [WHERE] ETCD',
  ],
  uninstall: ['tsmacvlan uninstall [--dry-run] [--force] [--orphans] [--json] [--tls-dir DIR] [WHERE] [ETCD]'],
};

const EXIT = `exit status: 0 done, 1 a check or the operation failed, 2 a usage error (nothing was done)`;

const WHERE = `WHERE: which tsmacvlan instance of this host (with none given: the only one found, a managed plugin in
Docker's plugin store or the service's socket; several found: name one)
  --plugin NAME|ID      a managed plugin, by its name (tsmacvlan:latest) or id (prefix): its socket and state dir
  --socket PATH         the plugin's unix socket (also $TSMACVLAN_SOCKET; a managed plugin's is
                        /run/docker/plugins/<plugin id>/tsmacvlan.sock, the service's /run/docker/plugins/tsmacvlan.sock)
  --state-dir DIR       its state directory (also $TSMACVLAN_STATE_DIR; a managed plugin's is its propagated mount,
                        <docker data root>/plugins/<id>/propagated-mount; default /var/lib/tsmacvlan)
  --docker-data-root DIR
                        Docker's data root, where its plugin store is (also $TSMACVLAN_DOCKER_DATA_ROOT; default
                        'data-root' of /etc/docker/daemon.json, else /var/lib/docker)`;

const ETCD = `ETCD: the cluster IPAM, for several Docker hosts on one LAN (each flag also $TSMACVLAN_ETCD, _PREFIX, _CA, ...)
  --etcd URL[,URL]      etcd endpoints: every new pool is cluster-wide (one subnet, one allocation table for all
                        hosts) unless --ipam-opt scope=host; without it addresses stay on this host
  --etcd-prefix P       key prefix shared by the hosts of one cluster (default /tsmacvlan)
  --etcd-ca FILE        CA of the etcd members (https:// endpoints); --etcd-cert FILE --etcd-key FILE: this
                        host's client certificate and key`;

const BODY: Record<Command, string> = {
  serve: `Runs the plugin: Docker's network driver and IPAM driver on a unix socket. SIGTERM or SIGINT finish the
requests in flight, remove the socket and exit 0; the state stays.

  --socket PATH         the socket Docker finds the plugin by; its file name is the driver name
                        (default $TSMACVLAN_SOCKET or /run/docker/plugins/tsmacvlan.sock)
  --state-dir DIR       where networks, endpoints and addresses are kept
                        (default $TSMACVLAN_STATE_DIR or /var/lib/tsmacvlan)
  --log-level LEVEL     fatal, error, warn, info, debug or trace (default $LOG_LEVEL or info)
  --metrics-address HOST:PORT
                        serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9464 (default
                        $TSMACVLAN_METRICS_ADDRESS; none: no metrics; docs/metrics.md)

${ETCD}`,
  doctor: `Checks this host, one line per check, OK/WARN/FAIL and what to do: privileges, kernel support (tried in a
throwaway network namespace), parents, the managed plugin, the plugin's socket and version, the state. Changes
nothing. Exits 1 when a check FAILs.

  --parent IF           also check IF as a parent (repeatable); the parents of recorded networks are always checked
  --json                machine-readable output (docs/cli.md has its shape)
  (with ETCD: also etcd's reachability, quorum and round trip)

${WHERE}

${ETCD}`,
  status: `The recorded networks, endpoints, address pools and DHCP leases next to the host's links, and where they
drift. Changes nothing. Exits 1 when some state cannot be read (drift is shown, not failed on: see doctor).

  --json                machine-readable output (docs/cli.md has its shape)
  (with ETCD: also the cluster's subnets and who holds how many of their addresses)

${WHERE}

${ETCD}`,
  gc: `Repairs the kernel from the state, as the plugin does at every start: re-creates parents it made, deletes its
links that nothing owns. Run it while the plugin is stopped (it refuses while a plugin answers on the socket).

  --dry-run             only prints what gc would repair (or, with --cluster, free)
  --json                machine-readable output (docs/cli.md has its shape)
  --cluster --forget-instance ID
                        frees every address instance ID (another host, gone for good: its state dir's 'instance'
                        file, or the owners 'status --etcd' lists) holds in the cluster table; needs ETCD.
                        Never run it for a host that may come back: it would keep using them

${WHERE}

${ETCD}`,
  uninstall: `Removes what tsmacvlan leaves on this host once the plugin itself is gone (docker plugin rm, or the
service stopped and disabled): its links (VLAN and internal parents it created, host-access shims and their routes,
endpoint links left on the host), a stale socket, its state directory, the TLS directory when empty and, with ETCD,
its claims in the cluster table. Refuses while a plugin answers on the socket, while a managed plugin using the state
dir is still installed, and while the state still records networks (Docker may still have them) unless --force.
A managed plugin's state is its propagated mount, which docker plugin rm removes with it: after a forced removal
(docker plugin rm -f with networks left), its links remain, marked by an instance whose state is gone; --orphans
deletes those.

  --dry-run             only prints what would be removed
  --force               also when the state still records networks: their links go, and containers still
                        attached to them lose their network
  --orphans             also delete links that carry tsmacvlan's mark and a device group no state dir on this host
                        has (the managed plugins', the service's, --state-dir's): an instance whose state is gone
  --json                machine-readable output (docs/cli.md has its shape)
  --tls-dir DIR         the service's etcd TLS directory (default /etc/tsmacvlan; a managed plugin keeps its TLS
                        files in its state dir's tls/): removed when empty, kept with your files in it

${WHERE}

${ETCD}`,
};

/** `tsmacvlan COMMAND --help`. */
export function commandHelp(command: Command): string {
  return [`usage: ${SYNOPSIS[command].join('\n       ')}`, '', BODY[command], '', EXIT].join('\n');
}

/** The lines naming a command's forms, under a usage error. */
export function synopsis(command: Command): string {
  return `usage: ${SYNOPSIS[command].join('\n       ')}\n(tsmacvlan ${command} --help says more)`;
}

/** `tsmacvlan --help`. */
export const USAGE = `usage: tsmacvlan COMMAND [FLAGS]   (tsmacvlan COMMAND --help for its flags)
       tsmacvlan --version

  serve       run the plugin (Docker's network and IPAM driver) on a unix socket
  doctor      check this host and the plugin, one line per check with what to do
  status      the recorded networks, endpoints and addresses next to the host's links
  gc          repair the kernel from the state while the plugin is stopped; free a gone host's cluster addresses
  uninstall   remove what the plugin leaves once it is removed: links, state, claims

${EXIT}
docs/cli.md is the full reference.`;
