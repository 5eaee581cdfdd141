// The writes of a DHCP endpoint's record while CreateEndpoint gets its leases: the record goes to disk marked
// unanswered as the exchange starts, and again with each lease as soon as the server grants it, while the address
// check runs. A start that finds such a record releases what it names (the crash rules of docs/crash-safety.md), and
// neither the writes wait on the wire nor the wire on them: their cost hides under the exchange and the check's wait.
import { crashPoint } from '../state/crash';
import type { RecordStore } from '../state/record-store';
import type { EndpointRecord } from './endpoint-naming';

export class LeaseRecordWrites {
  /** One write at a time, in order: the writes of one record share its temporary file. */
  private chain: Promise<void> = Promise.resolve();
  private failed = false;
  /** The record of the last write that reached the disk. */
  written: EndpointRecord | undefined;

  constructor(
    private readonly store: RecordStore<EndpointRecord>,
    /** Stops the exchanges at the first write that fails: nothing is kept without its record. */
    private readonly onFailure: () => void,
  ) {}

  /** Queues the record's write, marked unanswered; `point` is the crash point once it is on disk. */
  write(record: EndpointRecord, point: string): void {
    this.chain = this.chain.then(async () => {
      await this.store.put(record.id, { ...record, unanswered: true });
      this.written = record;
      crashPoint(point);
    });
    this.chain.catch(() => {
      if (!this.failed) this.onFailure();
      this.failed = true;
    });
  }

  /** The exchange's result; when it fails, the failure of a write that stopped it, if one did, else its own. */
  async around<T>(exchange: Promise<T>): Promise<T> {
    try {
      return await exchange;
    } catch (error) {
      throw (
        (await this.chain.then(
          () => undefined,
          (writeError: unknown) => writeError,
        )) ?? error
      );
    }
  }

  /** Resolves once every queued write is on disk; rejects with the first that failed. */
  settled(): Promise<void> {
    return this.chain;
  }
}
