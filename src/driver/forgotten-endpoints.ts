// Endpoints Docker has forgotten. Docker joins an endpoint right after creating it, moves the link the Join made into
// the container right after the answer, and deletes the endpoint right after Leave. An engine that dies between those
// steps, or that drops its endpoints at its next start while the plugin cannot answer (it forces them out of its store
// when the driver's DeleteEndpoint fails), never asks again: the endpoint's record, its link and its address would
// stay for good. So an endpoint that is still not joined, or whose link is still in the host's namespace, a grace
// period after its CreateEndpoint or its Join is deleted as Docker's DeleteEndpoint would, and its address becomes a
// release due (ipam/release-dues.ts), freed if Docker does not release it first.
//
// Only what the host can be sure of: a link in the host's namespace is in no container, and an endpoint never joined
// has none. An endpoint whose link has left the host is in a container, or was in one whose namespace is gone; the
// host cannot tell which without entering containers' namespaces, so such an endpoint stays until Docker deletes it.
import type { Logger } from 'pino';
import type { Links } from '../kernel/links';
import type { KeyedMutex } from '../state/keyed-mutex';
import { endpointGraceMs } from '../state/seconds-setting';
import { TimedQueue } from '../state/timed-queue';
import type { DriverState } from './driver-state';
import { endpointLinkName } from './endpoint-naming';

type Stage = 'created' | 'joined';

interface Check {
  endpointId: string;
  stage: Stage;
}

export class ForgottenEndpoints {
  private readonly queue: TimedQueue<Check>;
  /** The stage each endpoint awaiting a check was last seen at: only that stage's check counts. */
  private readonly pending = new Map<string, Check>();

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
   * At start, before any request is answered: each recorded endpoint whose link is in the host's namespace (`linkNames`)
   * waits for Docker once more. A plugin restarted between a Join's answer and Docker's move sees its link here too.
   */
  resumeAtStart(linkNames: ReadonlySet<string>): void {
    for (const id of this.state.endpoints.keys()) if (linkNames.has(endpointLinkName(id))) this.joined(id);
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
        : "deleted an endpoint whose link stayed in the host's namespace past the grace period: its engine forgot it",
    );
  }
}
