// I/O fault injection for tests, beside the crash points: with TSMACVLAN_IO_FAULT=<errno>:<ops>:<path part> (e.g.
// EIO:write,sync:/ipam/) every state operation of those kinds on a path containing <path part> fails as the kernel
// fails it with that errno. A full disk can be made for real (a small tmpfs); EIO cannot, without a failing device.
// Unset, each check costs one comparison.
import { constants } from 'node:os';

export type IoOp = 'write' | 'sync' | 'rename';

interface Fault {
  code: string;
  ops: string[];
  part: string;
  /** How many more failures (tests in this process); undefined: every time. */
  times?: number;
}

let fault = parse(process.env.TSMACVLAN_IO_FAULT);

function parse(spec: string | undefined): Fault | undefined {
  if (!spec) return undefined;
  const [code, ops, ...rest] = spec.split(':');
  if (!(code in constants.errno) || !ops)
    throw new Error(`TSMACVLAN_IO_FAULT=${spec}: expected <errno>:<ops>:<path part>, e.g. EIO:write,sync:/ipam/`);
  return { code, ops: ops.split(','), part: rest.join(':') };
}

/** Sets the fault (tests in this process), for `times` failures or for good; undefined clears it. */
export function setIoFault(spec: string | undefined, times?: number): void {
  fault = parse(spec);
  if (fault && times !== undefined) fault.times = times;
}

/** The error an injected fault makes `op` on `path` fail with, or undefined (nothing injected there). */
export function ioFault(op: IoOp, path: string): NodeJS.ErrnoException | undefined {
  if (fault === undefined || !fault.ops.includes(op) || !path.includes(fault.part)) return undefined;
  const { code } = fault;
  if (fault.times !== undefined && --fault.times <= 0) fault = undefined;
  const errno = constants.errno[code as keyof typeof constants.errno];
  return Object.assign(new Error(`${code}: injected i/o error, ${op} '${path}'`), {
    code,
    errno: -errno,
    syscall: op,
    path,
  });
}

/** Throws the injected fault of `op` on `path`, if any. */
export function checkIoFault(op: IoOp, path: string): void {
  const err = ioFault(op, path);
  if (err) throw err;
}
