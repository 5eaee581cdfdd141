// A deadline for a netlink request whose reply the kernel may have dropped (ENOBUFS): without one it would hang.

/**
 * `request`, or a rejection with ETIMEDOUT after `ms` — but only once the event loop has polled after the timer: a
 * reply already waiting in the socket when the loop was stalled (a freeze, a long GC) is read before the verdict counts.
 */
export function withTimeout<T>(request: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    // Timers run before the poll phase, setImmediate callbacks after it.
    timer = setTimeout(() => setImmediate(() => reject(new Error(`no reply within ${ms} ms: ETIMEDOUT`))), ms);
  });
  return Promise.race([request, timeout]).finally(() => clearTimeout(timer));
}
