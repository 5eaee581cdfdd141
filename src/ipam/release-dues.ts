// Releases Docker owes: when the network driver deletes an endpoint, Docker's ReleaseAddress for its address comes
// next. If a crash cut that request short, Docker retries it with an empty body (which cannot be carried out) for
// 30 s at most, then forgets it for good: its store dropped the endpoint before the driver was told. So an address
// whose release is still due after a grace period longer than that is released here, as Docker would have.
import type { Logger } from 'pino';

/** How long after its endpoint is deleted an address waits for Docker's ReleaseAddress (TSMACVLAN_RELEASE_GRACE_S). */
export function releaseGraceMs(env = process.env.TSMACVLAN_RELEASE_GRACE_S): number {
  if (env === undefined || env === '') return 120_000;
  const seconds = Number(env);
  // Docker retries a request for up to 30 s: a grace shorter than that could release an address while Docker's own
  // release of it is still under way. Tests use a few seconds, so only a positive number is asked for here.
  if (!Number.isFinite(seconds) || seconds < 1)
    throw new Error(`TSMACVLAN_RELEASE_GRACE_S=${env} is not a number of seconds (the default is 120)`);
  return seconds * 1000;
}

interface Due {
  subnet: string;
  value: bigint;
  by: number;
}

/** The dues of every subnet in the order they fall due, and one timer for the first. */
export class DueReleases {
  private readonly queue: Due[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    /** Releases `value` if it is still due by `by` (nothing released it meanwhile). */
    private readonly release: (subnet: string, value: bigint, by: number) => Promise<void>,
    private readonly log: Logger,
  ) {}

  add(subnet: string, value: bigint, by: number): void {
    // Dues are noted in the order they fall due, but for those loaded at start: keep the queue sorted.
    let at = this.queue.length;
    while (at > 0 && this.queue[at - 1].by > by) at--;
    this.queue.splice(at, 0, { subnet, value, by });
    if (at === 0) this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped || this.queue.length === 0) return;
    this.timer = setTimeout(() => void this.fire(), Math.max(0, this.queue[0].by - Date.now()));
    this.timer.unref();
  }

  private async fire(): Promise<void> {
    this.timer = undefined;
    while (!this.stopped && this.queue.length > 0 && this.queue[0].by <= Date.now()) {
      const due = this.queue.shift()!;
      await this.release(due.subnet, due.value, due.by).catch((err: unknown) =>
        this.log.error({ err, subnet: due.subnet }, 'could not release an address whose release was due'),
      );
    }
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    this.arm();
  }
}
