// DHCPv6 on a DHCP network with --ipv6 under Docker 28 (`--ipam-driver null --ipv6 -o dhcp=true`), Debian's dnsmasq on
// the switch as IPv6 router with the M flag and DHCPv6 server: the container's IA_NA lease outlives a kill -9 of the
// plugin; the restarted plugin renews it at the server's T1 (not before), which dnsmasq logs, and `docker rm` releases
// it, which dnsmasq logs too. Docker 20.10 to 27 refuse --ipv6 with the null IPAM (vitest.config.ts runs this on 28+).
import { describe, expect, it } from 'vitest';
import { CLI } from '../helpers/serve';
import { dockerOk, eventually, run, runSleeper, uniqueName } from './docker';
import { DhcpServer } from './dnsmasq';
import { DRIVER, SOCKET, withPluginDaemon } from './plugin-daemon';
import { createSwitch } from './topology';

const PREFIX = 'v6-dhcp6-';
const V6 = 'fd31:231:64::';
/** dnsmasq's shortest lease; its T1 is half of it less up to a sixteenth (its fuzz), so the renewal comes within ~1 min. */
const LEASE_MS = 120_000;

interface StatusLease {
  mac: string;
  address: string;
  server: string | null;
  expires: string;
  nextRenewal: string;
}

/** The plugin's DHCPv6 lease of the endpoint with `mac`, as `tsmacvlan status --json` shows it. */
async function v6Lease(stateDir: string, mac: string): Promise<StatusLease | undefined> {
  const status = ['status', '--json', '--socket', SOCKET, '--state-dir', stateDir];
  const { leases } = JSON.parse((await run(process.execPath, [CLI, ...status])).stdout) as { leases: StatusLease[] };
  return leases.find((l) => l.mac === mac && l.address.includes(':'));
}

describe(`Docker with ${DRIVER}: a DHCPv6 lease across a kill -9 of the plugin`, () => {
  const plugin = withPluginDaemon(PREFIX);

  it('the restarted plugin renews the lease at T1, seen by dnsmasq, and docker rm releases it', async () => {
    const sw = await createSwitch({ subnetPrefix: '10.231.64', ipv6Prefix: V6 });
    const server = new DhcpServer();
    try {
      await server.start(sw, {
        range: { first: 100, last: 120 },
        extraArgs: ['--enable-ra', `--dhcp-range=${V6}10,${V6}ff,64,${LEASE_MS / 60_000}m`],
      });
      const network = uniqueName(PREFIX);
      const create = ['network', 'create', '-d', DRIVER, '--ipam-driver', 'null', '--ipv6'];
      await dockerOk([...create, '-o', `parent=${sw.parent}`, '-o', 'dhcp=true', network]);
      const name = uniqueName(PREFIX);
      await runSleeper(name, { network });
      const format = `{{with index .NetworkSettings.Networks "${network}"}}{{.MacAddress}} {{.GlobalIPv6Address}}{{end}}`;
      const [mac, address] = (await dockerOk(['inspect', '-f', format, name])).split(' ') as [string, string];
      expect(address).toMatch(/^fd31:231:64::[1-9a-f][0-9a-f]?$/);
      // dnsmasq logs a REPLY with the address and the client's DUID (DUID-LL of the MAC), a RENEW and a RELEASE with
      // the DUID only.
      const duid = `00:03:00:01:${mac}`;
      const count = (what: string) =>
        server.log().split(`${what}(${sw.bridge}) ${what === 'DHCPREPLY' ? `${address} ` : ''}${duid}`).length - 1;
      expect(count('DHCPREPLY')).toBe(1);
      expect(count('DHCPRENEW')).toBe(0);

      const leased = (await v6Lease(plugin().stateDir, mac))!;
      expect(leased).toMatchObject({ address: `${address}/64` });
      const renewAt = Date.parse(leased.nextRenewal);
      // The server's T1: half the lease, less dnsmasq's fuzz (at most a sixteenth of it).
      const t1 = LEASE_MS - (Date.parse(leased.expires) - renewAt);
      expect(t1).toBeGreaterThanOrEqual(LEASE_MS / 2 - LEASE_MS / 16 - 1000);
      expect(t1).toBeLessThanOrEqual(LEASE_MS / 2 + 1000);

      await plugin().killAndRestart();
      // Resumed on the recorded schedule: no renewal before T1 (one at start would come well before 5 s ahead of T1).
      await new Promise((resolve) => setTimeout(resolve, Math.max(renewAt - Date.now() - 5000, 0)));
      expect(count('DHCPRENEW')).toBe(0);
      await eventually(() => expect(count('DHCPRENEW')).toBe(1), 45_000);
      await eventually(() => expect(count('DHCPREPLY')).toBe(2), 10_000);
      expect(server.log()).not.toMatch(/lease not found|address invalid/);
      await eventually(async () => {
        const renewed = (await v6Lease(plugin().stateDir, mac))!;
        expect(Date.parse(renewed.nextRenewal)).toBeGreaterThan(renewAt);
      }, 10_000);

      await dockerOk(['rm', '-f', name]);
      await eventually(() => expect(count('DHCPRELEASE')).toBe(1), 10_000);
    } finally {
      await server.stop();
    }
  }, 180_000);
});
