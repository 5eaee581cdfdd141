// An in-process plugin on a temporary state dir, driven with fastify.inject.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { NetworkDriver } from '../../src/driver/driver';
import { IpamService } from '../../src/ipam/service';
import { Links } from '../../src/kernel/links';
import { PacketTap } from '../../src/kernel/packet-tap';
import { Neighbourhood } from '../../src/probe/neighbourhood';
import { RouterAdverts } from '../../src/ra/router-adverts';
import { PoolPrefixes } from '../../src/ra/pool-prefixes';
import { openDhcp6Clients } from '../../src/dhcp6/clients';

/** The driver name in-process test instances stand for (the tests' sockets use it too). */
export const TEST_DRIVER = 'tsmacvlan-test';
import { buildServer } from '../../src/api/server';
import { stateGroup } from '../../src/state/instance';
import { migrateState } from '../../src/state/migrate';
import { STATE_FILES } from '../../src/inspect/state-formats';

export interface TestPlugin {
  app: FastifyInstance;
  driver: NetworkDriver;
  stateDir: string;
  call(method: string, body?: unknown): Promise<{ status: number; json: any }>;
  /** Closes this instance and opens a new one on the same state, as after a restart. */
  restart(): Promise<TestPlugin>;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * `probe`: the IPAM probes addresses on the networks' parents before handing them out, as `serve` does. `ipv6`: the
 * driver hears router advertisements (SLAAC on DHCP networks with IPv6), as `serve` does; it probes too.
 */
export async function startPlugin(
  stateDir = mkdtempSync(join(tmpdir(), 'tsmv-state-')),
  options: { probe?: boolean; ipv6?: boolean } = {},
): Promise<TestPlugin> {
  const log = pino({ level: 'silent' });
  // As serve starts: the state's formats first (a new state gets format.json), then the instance.
  migrateState(stateDir, STATE_FILES, log);
  const links = new Links(stateGroup(stateDir, true));
  const tap = options.probe || options.ipv6 ? new PacketTap((error) => console.error(error)) : undefined;
  const neighbourhood = tap && new Neighbourhood({ tap, links, log });
  const routerAdverts = tap && options.ipv6 ? new RouterAdverts(tap, log) : undefined;
  const driver = new NetworkDriver(links, stateDir, log, {
    neighbourhood,
    routerAdverts,
    ...(tap && options.ipv6 && { openDhcp6: (l: typeof log) => openDhcp6Clients(l, tap) }),
    releaseDue: (subnet, address, addressSpace) => ipam.releaseDue(subnet, address, addressSpace),
  });
  const ipam = new IpamService(
    stateDir,
    log,
    undefined,
    neighbourhood,
    undefined,
    routerAdverts && new PoolPrefixes(routerAdverts, links),
  );
  await driver.reconcile();
  const app = buildServer({ driver, ipam }, log);
  await app.ready();
  const plugin: TestPlugin = {
    app,
    driver,
    stateDir,
    async call(method, body) {
      const res = await app.inject({
        method: 'POST',
        url: `/${method}`,
        payload: body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body),
      });
      return { status: res.statusCode, json: res.body ? JSON.parse(res.body) : undefined };
    },
    async restart() {
      await plugin.close();
      return startPlugin(stateDir, options);
    },
    async close() {
      await app.close();
      await ipam.close();
      neighbourhood?.close();
      routerAdverts?.close();
      await driver.close();
      links.close();
    },
    async destroy() {
      await plugin.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return plugin;
}
