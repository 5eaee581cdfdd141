// The kernel's refusals, with the errno it gave, and what they mean to the layers above.

/** A kernel refusal, with the errno name the kernel gave ("EEXIST", "ENODEV", ...). */
export class KernelError extends Error {
  constructor(
    readonly operation: string,
    readonly errno: string,
  ) {
    super(`${operation}: ${errno}`);
  }

  /** A link (or address, route) by that name or key exists already. */
  get nameTaken(): boolean {
    return this.errno === 'EEXIST';
  }

  /** The kernel has no support for what was asked (a link type whose module is missing). */
  get unsupported(): boolean {
    return this.errno === 'EOPNOTSUPP' || this.errno === 'ENOTSUP';
  }
}

export function errnoOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return /\b(E[A-Z0-9]+)\b/.exec(message)?.[1] ?? message;
}
