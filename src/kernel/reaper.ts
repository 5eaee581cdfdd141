// Deleting a link costs the kernel 17-20 ms (an RCU grace period), spent inside the netlink send itself, on the
// calling thread. On the event loop that would stall every other request, so deletions run one after another on a
// worker thread with a netlink socket of its own (a thread shares the process's network namespace).
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createRtNetlink } = require(${JSON.stringify(require.resolve('netlink'))});
const socket = createRtNetlink();
// One request at a time, so its reply always fits the buffer; yet an 'error' event without a listener is thrown.
socket.socket.on('error', () => undefined);
parentPort.on('message', async ({ id, name }) => {
  try {
    await socket.delLink({}, { ifname: name });
    parentPort.postMessage({ id });
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err) });
  }
});
`;

export class LinkReaper {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly answers = new Map<number, (error?: string) => void>();
  private readonly inFlight = new Set<Promise<void>>();

  /** Deletes the named link off the event loop; resolves when it is gone (or was already). */
  delete(name: string): Promise<void> {
    const worker = this.start();
    if (this.answers.size === 0) worker.ref(); // the process stays up while deletions are pending
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) => {
      // A link already gone is what was wanted.
      this.answers.set(id, (error) =>
        error && !/ENODEV/.test(error) ? reject(new Error(`delete link ${name}: ${error}`)) : resolve(),
      );
    });
    worker.postMessage({ id, name });
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return done;
  }

  /** True while deletions are under way. */
  get busy(): boolean {
    return this.inFlight.size > 0;
  }

  /** Resolves once every deletion asked for so far has finished, failed or not. */
  async settled(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  async close(): Promise<void> {
    await this.settled();
    await this.worker?.terminate();
    this.worker = undefined;
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    // Its work is one small message per link: a small heap keeps the thread's own memory to a few MB.
    const worker = new Worker(WORKER, {
      eval: true,
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 },
    });
    worker.unref();
    worker.on('message', ({ id, error }: { id: number; error?: string }) => {
      const answer = this.answers.get(id);
      this.answers.delete(id);
      if (this.answers.size === 0) worker.unref();
      answer?.(error);
    });
    worker.on('error', (err) => {
      for (const answer of this.answers.values()) answer(err.message);
      this.answers.clear();
      this.worker = undefined;
    });
    this.worker = worker;
    return worker;
  }
}
