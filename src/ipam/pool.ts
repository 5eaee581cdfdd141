// An address pool of a subnet (one RequestPool of Docker's), and who holds an address.
import { PluginError } from '../errors';
import type { Cidr } from './address';
import type { Subnet } from './allocator';
import type { DynamicRange } from './dynamic-range';

/** Who holds an address. Gateways may be shared by several pools (networks on one LAN share its router); nothing else is shared. */
export type Holder = { kind: 'aux' | 'static' | 'dynamic'; pool: Pool } | { kind: 'gateway'; by: Map<Pool, number> };

/** No free address left in a pool's dynamic range. `line`, when set, records how the search moved the range (to be journaled). */
export class ExhaustedError extends PluginError {
  constructor(
    message: string,
    readonly line: string | undefined,
  ) {
    super(message);
  }
}

export class Pool {
  refs = 0;
  /** References whose RequestPool was saved but not yet answered: a crash now means Docker never got them. */
  unanswered = 0;
  /** Addresses this pool holds (a gateway counts once however many times it was requested). */
  allocated = 0;
  readonly holders: { aux: Holder; static: Holder; dynamic: Holder };

  constructor(
    readonly subnet: Subnet,
    /** The pool's number in its subnet's journal, shorter than its id. */
    readonly journalNumber: number,
    readonly id: string,
    readonly range: Cidr | undefined,
    readonly options: Record<string, string>,
    readonly lane: DynamicRange,
  ) {
    this.holders = {
      aux: { kind: 'aux', pool: this },
      static: { kind: 'static', pool: this },
      dynamic: { kind: 'dynamic', pool: this },
    };
  }
}

export interface PoolSpec {
  id: string;
  range?: Cidr;
  options: Record<string, string>;
}

export function sameOptions(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length &&
    keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k])
  );
}
