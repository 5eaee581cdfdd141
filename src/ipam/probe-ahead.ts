// Probes run ahead of need, so that a take finds its address's verdict ready and a container start never waits for
// one (a probe takes 0.4 s, see src/probe/address-probes.ts). Per lane (a pool's --ip-range, local or cluster-wide):
// the next few candidates are kept probed, more of them while takes come fast, each probed again before its verdict
// ages, for as long as the lane is in use.
import type { Logger } from 'pino';
import type { Cidr } from '../ip/address';
import { FRESH_MS, type Neighbourhood } from '../probe/neighbourhood';
/** A candidate's verdict older than this is renewed, so that it is still fresh when a take reaches it. */
const RENEW_AFTER_MS = FRESH_MS / 2;
/** How often a lane in use renews its candidates. */
const TICK_MS = 5_000;
/** A lane with no take for this long stops probing (its first take after that waits for a probe). */
const IDLE_MS = 600_000;
/** Candidates kept probed: at least BASE, twice the takes of the last DEMAND_MS (a burst), at most MAX. */
const BASE = 4;
const MAX = 32;
const DEMAND_MS = 2_000;

export type Upcoming = (n: number) => bigint[] | Promise<bigint[]>;

interface Lane {
  subnet: Cidr;
  upcoming: Upcoming;
  takes: number[];
  lastUsed: number;
  timer: NodeJS.Timeout | undefined;
}

export class ProbeAhead {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly neighbourhood: Neighbourhood,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Lane `key` of `subnet` is in use (`take`: a take is under way): its next candidates, as `upcoming` lists them,
   * are probed now if they have no recent verdict, and kept so while the lane is in use.
   */
  use(key: string, subnet: Cidr, upcoming: Upcoming, take: boolean): void {
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = { subnet, upcoming, takes: [], lastUsed: 0, timer: undefined }));
    lane.upcoming = upcoming;
    lane.lastUsed = this.now();
    if (take) {
      lane.takes.push(lane.lastUsed);
      if (lane.takes.length > MAX) lane.takes.shift();
    }
    this.topUp(lane);
    if (!lane.timer) {
      const timer = setInterval(() => {
        if (this.now() - lane.lastUsed > IDLE_MS) {
          clearInterval(timer);
          lane.timer = undefined;
        } else this.topUp(lane);
      }, TICK_MS);
      timer.unref();
      lane.timer = timer;
    }
  }

  /** The lane is gone (its last pool released). */
  forget(key: string): void {
    clearInterval(this.lanes.get(key)?.timer);
    this.lanes.delete(key);
  }

  close(): void {
    for (const key of [...this.lanes.keys()]) this.forget(key);
  }

  private topUp(lane: Lane): void {
    const since = this.now() - DEMAND_MS;
    const demand = lane.takes.filter((at) => at >= since).length;
    const want = Math.min(MAX, Math.max(BASE, 2 * demand));
    const { subnet } = lane;
    Promise.resolve()
      .then(() => lane.upcoming(want))
      .then((candidates) => {
        for (const value of candidates) {
          if (this.neighbourhood.underWay(subnet, value)) continue;
          if (this.neighbourhood.recent(subnet, value, RENEW_AFTER_MS)) continue;
          this.neighbourhood.check(subnet, value).catch((err: Error) => this.failed(subnet, err));
        }
      })
      .catch((err: Error) => this.failed(subnet, err));
  }

  /** A probe ahead of need that failed: the take that reaches its address probes again and fails closed. */
  private failed(subnet: Cidr, err: Error): void {
    this.log.debug({ subnet: subnet.text, err: err.message }, 'probing ahead failed');
  }
}
