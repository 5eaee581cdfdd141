// Doctor: the privileges the plugin needs (CAP_NET_ADMIN; CAP_SYS_ADMIN for the kernel probe).
import type { Check } from './check';
const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;

/** The effective capability set from /proc/<pid>/status text (CapEff, hex). */
export function parseCapEff(procStatus: string): bigint {
  const hex = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(procStatus)?.[1];
  return hex ? BigInt(`0x${hex}`) : 0n;
}

export function privilegesCheck(procStatus: string): Check {
  const caps = parseCapEff(procStatus);
  const uid = /^Uid:\s*\d+\s+(\d+)/m.exec(procStatus)?.[1] ?? '?'; // the effective uid
  const has = (bit: bigint) => (caps & (1n << bit)) !== 0n;
  const id = 'privileges';
  if (!has(CAP_NET_ADMIN)) {
    return {
      id,
      status: 'FAIL',
      message: `running as uid ${uid} without CAP_NET_ADMIN: the plugin could not create links, and doctor cannot test the kernel or read the state`,
      fix: 'run the plugin and doctor as root (sudo tsmacvlan doctor)',
    };
  }
  if (!has(CAP_SYS_ADMIN)) {
    return {
      id,
      status: 'WARN',
      message: `running as uid ${uid} with CAP_NET_ADMIN but without CAP_SYS_ADMIN: doctor cannot make the throwaway network namespace it tests the kernel in (every other check runs)`,
      fix: 'to test the kernel too, run doctor as root on the host (sudo tsmacvlan doctor); the CLI image runs without CAP_SYS_ADMIN on purpose',
    };
  }
  return {
    id,
    status: 'OK',
    message: `running as uid ${uid} with CAP_NET_ADMIN (and CAP_SYS_ADMIN, for the kernel test)`,
  };
}
