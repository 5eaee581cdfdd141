// Doctor: can the state be read, and does it drift from the host?
import { findDrift } from '../drift';
import { type StateSnapshot } from '../state-snapshot';
import { type LinkInfo } from '../../kernel/link-info';
import type { Check } from './check';
const BROKEN_RECORD_ADVICE =
  'the plugin does not start with a broken record: repair the file, or, with the plugin stopped, move it out of the state dir if Docker no longer has that network (docker network ls --no-trunc)';

export function stateCheck(state: StateSnapshot, pluginAnswers: boolean): Check {
  const id = 'state';
  if (state.format.state === 'newer')
    return {
      id,
      status: 'FAIL',
      message: state.format.message,
      fix: `run tsmacvlan ${state.format.writtenBy} or newer: this version neither reads nor migrates that state (docs/state.md)`,
    };
  if (state.unreadable.length) {
    const denied = state.unreadable.some((u) => /EACCES|EPERM/.test(u.error));
    return {
      id,
      status: 'FAIL',
      message: `${state.stateDir}: ${state.unreadable.map((u) => `${u.file}: ${u.error}`).join('; ')}`,
      fix: denied ? 'run doctor as root (the state is root-only)' : BROKEN_RECORD_ADVICE,
    };
  }
  if (!state.exists) {
    return pluginAnswers
      ? {
          id,
          status: 'WARN',
          message: `${state.stateDir} does not exist, yet a plugin answers on the socket: it keeps its state somewhere else`,
          fix: "give doctor the plugin's --state-dir",
        }
      : {
          id,
          status: 'OK',
          message: `${state.stateDir} does not exist yet: nothing recorded (the plugin creates it at start)`,
        };
  }
  const recorded = `${state.stateDir}: ${state.networks.length} network(s), ${state.endpoints.length} endpoint(s), ${state.pools.length} address pool(s) recorded, all readable`;
  if (state.format.state === 'older')
    return {
      id,
      status: 'WARN',
      message: `${recorded}; state ${state.format.message}`,
      fix: 'start (or upgrade) the plugin to this version: it migrates the state before it serves (docs/state.md)',
    };
  return { id, status: 'OK', message: recorded };
}

/** Drift between the records and the host's links; a missing parent is left to its parent:<name> check. */
export function driftChecks(state: StateSnapshot, hostLinks: LinkInfo[], group: number | undefined): Check[] {
  const drift = findDrift(state, hostLinks, group).filter((d) => d.kind !== 'parent-missing');
  if (drift.length === 0) {
    return [
      {
        id: 'drift',
        status: 'OK',
        message: "no link of the plugin's without a record, no missing shim, no endpoint without its network",
      },
    ];
  }
  return drift.map((d) => ({
    id: `drift:${d.subject}`,
    status: 'WARN',
    message: `${d.kind}: ${d.message}`,
    fix: `${d.fix} ('tsmacvlan status' shows the whole picture)`,
  }));
}

/**
 * Endpoints whose SLAAC prefix the LAN's router withdrew or deprecated, or let expire: one WARN each (none while every
 * prefix is valid, no row at all without SLAAC endpoints). The container keeps its address, which the plugin cannot
 * change from outside; a new connection forms one in the router's current prefix.
 */
export function slaacChecks(state: StateSnapshot): Check[] {
  const slaac = state.endpoints.filter((e) => e.slaac && e.ipv6);
  if (slaac.length === 0) return [];
  const lost = slaac.filter((e) => e.slaac?.lost);
  if (lost.length === 0)
    return [
      {
        id: 'ipv6-prefixes',
        status: 'OK',
        message: `${slaac.length} SLAAC address(es), every prefix still advertised`,
      },
    ];
  return lost.map(({ id, networkId, ipv6, slaac: s }) => ({
    id: `ipv6-prefix:${id.slice(0, 12)}`,
    status: 'WARN',
    message:
      `endpoint ${id.slice(0, 12)} keeps ${ipv6}, but the router's prefix ${s!.prefix} is ${s!.lost!.condition} ` +
      `since ${new Date(s!.lost!.at).toISOString()}: the LAN may no longer route it`,
    fix:
      `the plugin cannot renumber a running container; reconnect it for an address in the current prefix: ` +
      `docker network disconnect <network> <container> && docker network connect <network> <container> ` +
      `(network ${networkId.slice(0, 12)}; 'tsmacvlan status' shows the container's prefix)`,
  }));
}
