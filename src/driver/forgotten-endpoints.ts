// Endpoints Docker has forgotten. Docker joins an endpoint right after creating it, moves the link the Join made into
// the container right after the answer, and deletes the endpoint right after Leave. An engine that dies between those
// steps, or that drops its endpoints at its next start while the plugin cannot answer (it forces them out of its store
// when the driver's DeleteEndpoint fails), never asks again: the endpoint's record, its link and its address would
// stay for good. So an endpoint that is still not joined, or whose link is still in the host's namespace, a grace
// period after its CreateEndpoint or its Join is deleted as Docker's DeleteEndpoint would, and its address becomes a
// release due (ipam/release-dues.ts), freed if Docker does not release it first.
//
// Only what the host can be sure of: a link in the host's namespace is in no container, and an endpoint never joined
// has none. An endpoint whose link has left the host is in a container, or was in one whose namespace is gone. While
// the plugin runs, Docker's DeleteEndpoint tells; an engine that drops endpoints at its start while the plugin is down
// (both died with the host, or the plugin restarted meanwhile) never does. So after a start, an endpoint with a MAC of
// its own (a macvlan, not passthru) whose link is not on the host is checked a grace period later: a macvlan that is up,
// in any namespace, is on its parent's unicast list; one that is not there is in no running container, and goes.
// ipvlan endpoints share their parent's MAC and passthru takes it: those stay until Docker deletes them.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { MARK_LIST_CHECK } from '../kernel/marks';
import type { Links } from '../kernel/links';
import type { KeyedMutex } from '../state/keyed-mutex';
import { endpointGraceMs } from '../state/seconds-setting';
import { TimedQueue } from '../state/timed-queue';
import type { DriverState } from './driver-state';
import { endpointLinkName, listCheckLinkName, type EndpointRecord } from './endpoint-naming';
import { childMode, ownMac } from './link-kind';

/** What was last seen of the endpoint: answered, joined, or at a start neither joined on the host nor known unjoined. */
type Stage = 'created' | 'joined' | 'away';

/** How long one dump of a parent's unicast list answers the checks that come due after it. */
const LIST_REUSE_MS = 1_000;

interface Check {
  endpointId: string;
  stage: Stage;
}

export class ForgottenEndpoints {
  private readonly queue: TimedQueue<Check>;
  /** The stage each endpoint awaiting a check was last seen at: only that stage's check counts. */
  private readonly pending = new Map<string, Check>();
  /** Per parent index: whether its unicast list shows its macvlans' MACs (see listsChildren). */
  private readonly lists = new Map<number, Promise<boolean>>();
  /** Per parent index: its last unicast list and when it was asked for (see unicastMacs). */
  private readonly unicastLists = new Map<number, { at: number; macs: Promise<Set<string>> }>();

  constructor(
    private readonly links: Links,
    private readonly state: DriverState,
    private readonly endpointLocks: KeyedMutex,
    /** Deletes the endpoint as DeleteEndpoint does, under its lock (which the caller holds). */
    private readonly deleteLocked: (networkId: string, endpointId: string) => Promise<void>,
    private readonly log: Logger,
    private readonly graceMs = endpointGraceMs(),
  ) {
    this.queue = new TimedQueue<Check>(
      (check) => this.endpointLocks.run(check.endpointId, () => this.checkLocked(check)),
      (err, check) =>
        log.error({ err, endpoint: check.endpointId }, 'could not check whether Docker forgot an endpoint'),
    );
  }

  /** CreateEndpoint was answered: Docker's Join is due. */
  created(endpointId: string): void {
    this.expect(endpointId, 'created');
  }

  /** Join was answered: Docker takes the link into the container next. */
  joined(endpointId: string): void {
    this.expect(endpointId, 'joined');
  }

  /** DeleteEndpoint came: nothing is due any more. */
  deleted(endpointId: string): void {
    this.pending.delete(endpointId);
  }

  /**
   * At start, before any request is answered: each recorded endpoint waits for Docker once more, as joined when its
   * link is in the host's namespace (`linkNames`: a plugin restarted between a Join's answer and Docker's move sees it
   * here too), as away otherwise.
   */
  resumeAtStart(linkNames: ReadonlySet<string>): void {
    for (const id of this.state.endpoints.keys())
      this.expect(id, linkNames.has(endpointLinkName(id)) ? 'joined' : 'away');
  }

  stop(): void {
    this.queue.stop();
  }

  private expect(endpointId: string, stage: Stage): void {
    const check = { endpointId, stage };
    this.pending.set(endpointId, check);
    this.queue.add(check, Date.now() + this.graceMs);
  }

  private async checkLocked(check: Check): Promise<void> {
    if (this.pending.get(check.endpointId) !== check) return;
    this.pending.delete(check.endpointId);
    const endpoint = this.state.endpoints.get(check.endpointId);
    if (!endpoint) return;
    const link = await this.links.get(endpointLinkName(endpoint.id));
    const onHost = link !== undefined && this.links.owns(link);
    if (check.stage === 'joined' && !onHost) return;
    if (check.stage === 'away' && !onHost && !(await this.inNoContainer(endpoint))) return;
    try {
      await this.deleteLocked(endpoint.networkId, endpoint.id);
    } catch (err) {
      // Its address's release could not be noted (etcd unreachable), or its record not removed: it stays as it was.
      this.log.warn(
        { err, endpoint: endpoint.id },
        'could not delete a forgotten endpoint yet; checking it again later',
      );
      this.expect(endpoint.id, check.stage);
      return;
    }
    const { networkId: network, ipv4, ipv6 } = endpoint;
    const fields = { endpoint: endpoint.id, network, address: ipv4 ?? ipv6, graceSeconds: this.graceMs / 1000 };
    this.log.warn(
      fields,
      check.stage === 'created'
        ? 'deleted an endpoint Docker never joined within the grace period: its engine forgot it'
        : onHost
          ? "deleted an endpoint whose link stayed in the host's namespace past the grace period: its engine forgot it"
          : "deleted an endpoint whose link is in no running container (its MAC is not on its parent's unicast list) a grace period after the start: its engine forgot it",
    );
  }

  /** True when the endpoint's macvlan is certainly in no running container: see the top of this file. */
  private async inNoContainer(endpoint: EndpointRecord): Promise<boolean> {
    const network = this.state.networks.get(endpoint.networkId);
    if (!network || !endpoint.mac || !ownMac(childMode(network)) || network.mode === 'passthru') return false;
    const parent = await this.links.get(network.parent);
    if (!parent || !(await this.listsChildren(parent.index))) return false;
    return !(await this.unicastMacs(parent.index)).has(endpoint.mac.toLowerCase());
  }

  /**
   * The parent's unicast list, one dump shared by the checks of one moment: a start's checks all come due together,
   * and a dump per endpoint would hold the netlink socket (dumps run alone) once per endpoint, each as long as the list.
   */
  private unicastMacs(parentIndex: number): Promise<Set<string>> {
    const recent = this.unicastLists.get(parentIndex);
    if (recent && Date.now() - recent.at < LIST_REUSE_MS) return recent.macs;
    const macs = this.links.unicastMacs(parentIndex);
    this.unicastLists.set(parentIndex, { at: Date.now(), macs });
    macs.catch(() => this.unicastLists.delete(parentIndex));
    return macs;
  }

  /**
   * Whether the parent's unicast list shows its up macvlans (a driver with a forwarding table of its own may list
   * something else): learned once per parent with a macvlan of ours, up for a moment with a random MAC. Until that is
   * known, no endpoint there is taken for gone.
   */
  private listsChildren(parentIndex: number): Promise<boolean> {
    let known = this.lists.get(parentIndex);
    if (!known) {
      known = this.checkList(parentIndex).catch((err: Error) => {
        this.lists.delete(parentIndex);
        this.log.warn({ err, parentIndex }, "could not learn whether a parent lists its macvlans' MACs");
        return false;
      });
      this.lists.set(parentIndex, known);
    }
    return known;
  }

  private async checkList(parentIndex: number): Promise<boolean> {
    const name = listCheckLinkName(parentIndex);
    const mac = ['02', ...[...randomBytes(5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
    await this.links.createChild({ kind: 'macvlan', mode: 'bridge', name, parentIndex, mac }, MARK_LIST_CHECK);
    try {
      const link = await this.links.get(name);
      if (!link) return false;
      await this.links.setUp(link.index);
      return (await this.links.unicastMacs(parentIndex)).has(mac);
    } finally {
      await this.links.delete(name);
    }
  }
}
