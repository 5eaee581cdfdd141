// Durations counted into fixed buckets as plain numbers: what a lower layer keeps of its own timings (an fsync, an etcd
// call) for the metrics exporter to read on scrape. Counting costs a few comparisons and no allocation, and needs no
// metrics library, so it runs whether metrics are on or off.

export class DurationHistogram {
  /** Observations per bucket, not cumulative: counts[i] for bounds[i-1] < seconds <= bounds[i]; the last is above every bound. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  /** `bounds`: upper bounds in seconds, ascending. */
  constructor(readonly bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++)
      if (!(bounds[i] > bounds[i - 1])) throw new Error(`histogram bounds must ascend: ${bounds.join(', ')}`);
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(seconds: number): void {
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
    this.count++;
  }

  /** Runs `work` and counts how long it took, whether it succeeded or failed. */
  async time<T>(work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.observe((performance.now() - started) / 1000);
    }
  }

  /** The same for synchronous work. */
  timeSync<T>(work: () => T): T {
    const started = performance.now();
    try {
      return work();
    } finally {
      this.observe((performance.now() - started) / 1000);
    }
  }
}
