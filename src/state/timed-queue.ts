// Things that fall due at a time (ms since the epoch), handed out in the order they fall due under one timer: the
// releases Docker owes (ipam/release-dues.ts, cluster/releases.ts).

/** Node's timers hold at most 2^31-1 ms (24.8 days; a clock set back could ask for more): a run checks the time. */
const LONGEST_WAIT = 2 ** 31 - 1;

export class TimedQueue<T> {
  private readonly entries: { at: number; item: T }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    /** Called with each item once its time has come, one at a time; a rejection goes to `failed`. */
    private readonly due: (item: T) => Promise<void> | void,
    private readonly failed: (err: unknown, item: T) => void,
  ) {}

  get size(): number {
    return this.entries.length;
  }

  /** The items not yet due, in the order they fall due. */
  values(): T[] {
    return this.entries.map((entry) => entry.item);
  }

  add(item: T, at: number): void {
    // Items mostly come in the order they fall due (those read at start excepted): the walk from the end is short.
    let index = this.entries.length;
    while (index > 0 && this.entries[index - 1].at > at) index--;
    this.entries.splice(index, 0, { at, item });
    if (index === 0) this.arm();
  }

  /** Forgets `item` if it is still waiting. */
  remove(item: T): void {
    const index = this.entries.findIndex((entry) => entry.item === item);
    if (index >= 0) this.entries.splice(index, 1);
  }

  stop(): void {
    this.stopped = true;
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped || this.entries.length === 0) return;
    const wait = Math.min(LONGEST_WAIT, Math.max(0, this.entries[0].at - Date.now()));
    this.timer = setTimeout(() => void this.run(), wait);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    this.timer = undefined;
    while (!this.stopped && this.entries.length > 0 && this.entries[0].at <= Date.now()) {
      const { item } = this.entries.shift()!;
      try {
        await this.due(item);
      } catch (err) {
        this.failed(err, item);
      }
    }
    this.arm();
  }
}
