// A counting semaphore: at most `limit` holders at once, the others wait in arrival order.
export class Gate {
  private holders = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async enter(): Promise<void> {
    if (this.holders < this.limit) {
      this.holders++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Hands the place to the next waiter, if any. */
  leave(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.holders--;
  }
}
