// A subnet as the journal holds it: the model (subnet-model.ts) plus its snapshot as journal lines and the replay of
// those lines, which rebuilds the same state.
import { newerFormatMessage } from '../state/record-format';
import {
  JOURNAL_FORMAT,
  PREFIX_CONDITIONS,
  RECORD,
  addressField,
  poolSpecFields,
  int,
  journalLine,
  offset,
  str,
  takeKindOf,
  type JournalRecord,
  type PoolSpec,
} from './journal-records';
import { type Pool, SubnetModel, isEndpointHolder, unansweredKey } from './subnet-model';

export class Subnet extends SubnetModel {
  /** Replay: lines applied so far, and how many lines the snapshot at the head of the file has (the rest are changes). */
  private replayed = 0;
  private snapshotLines = Infinity;

  // ---- journal ----

  /** Format 2 says how many lines the snapshot has: later lines are changes, whose takes are unanswered until their 'ok'. */
  header(lines: number): string {
    return journalLine.header(this.cidr.text, lines);
  }

  /** The whole state as journal lines; replaying them on an empty Subnet gives this state back. */
  snapshot(): string[] {
    const lines = [''];
    for (const pool of this.pools.values()) {
      lines.push(journalLine.pool(pool.journalNumber, pool.id, pool.range, pool.options, pool.refs, pool.unanswered));
      if (pool.prefixLost) lines.push(journalLine.prefix(pool.journalNumber, pool.prefixLost));
    }
    for (const [value, holder] of this.taken) {
      const a = this.text(value);
      const unanswered = (pool: Pool) => this.unanswered.get(unansweredKey(value, pool))?.count;
      if (holder.kind === 'gateway') {
        for (const [pool, count] of holder.by)
          lines.push(journalLine.heldTake('gateway', a, pool.journalNumber, count, unanswered(pool)));
      } else if (holder.kind === 'device') {
        lines.push(journalLine.device(a, holder.pool.journalNumber, holder.mac, holder.since));
      } else {
        lines.push(journalLine.heldTake(holder.kind, a, holder.pool.journalNumber, undefined, unanswered(holder.pool)));
      }
    }
    for (const [value, by] of this.dues) {
      const holder = this.taken.get(value);
      if (holder && isEndpointHolder(holder))
        lines.push(journalLine.due(this.text(value), holder.pool.journalNumber, by));
    }
    // Ranges after the addresses: replaying the address lines moves cursors, the range lines then set them.
    const base = this.cidr.base;
    for (const range of this.lanes.values()) {
      range.compactFifo(this.taken);
      const fifo = range.fifo.values().map((v) => (v - base).toString());
      const sweep = range.sweepNeeded || range.sweep !== undefined;
      lines.push(journalLine.range(range.key || null, (range.cursor - base).toString(), fifo, sweep));
    }
    lines[0] = this.header(lines.length);
    return lines;
  }

  private poolOf(record: JournalRecord): Pool {
    const no = int(record, 'p');
    const pool = this.poolsByNumber.get(no);
    if (!pool) throw new Error(`pool number ${no} is not defined before this line`);
    return pool;
  }

  private address(record: JournalRecord): bigint {
    return addressField(record, this.cidr);
  }

  private spec(record: JournalRecord): PoolSpec {
    return poolSpecFields(record, this.cidr);
  }

  /** Applies one journal record (a snapshot line or a change). Throws an Error describing a record that does not fit. */
  apply(record: JournalRecord): void {
    const inSnapshot = this.replayed++ < this.snapshotLines;
    switch (record.t) {
      case RECORD.header:
        return this.applyHeader(record);
      case RECORD.pool:
        return this.applyPool(record, true);
      case RECORD.acquire:
        return this.applyPool(record, false);
      case RECORD.answered:
        return this.applyAnswered(record);
      case RECORD.release:
        this.releasePool(this.poolOf(record));
        return;
      case RECORD.range:
        return this.applyRange(record);
      case RECORD.freed:
        this.release(this.address(record), this.poolOf(record), false);
        return;
      case RECORD.exhausted:
        return this.poolOf(record).lane.replayExhausted();
      case RECORD.device:
        return this.applyDevice(record);
      case RECORD.due:
        return this.applyDue(record);
      case RECORD.prefix:
        return this.applyPrefix(record);
      default:
        return this.applyTake(record, inSnapshot);
    }
  }

  private applyHeader(record: JournalRecord): void {
    if (record.subnet !== this.cidr.text) throw new Error(`header names subnet '${String(record.subnet)}'`);
    // Format 1 (before answers were marked) holds nothing unanswered: every line counts as a snapshot line.
    if (record.format !== undefined && int(record, 'format') > JOURNAL_FORMAT)
      throw new Error(newerFormatMessage('this journal', int(record, 'format'), JOURNAL_FORMAT));
    this.snapshotLines = typeof record.format === 'number' && record.format >= 2 ? int(record, 'lines') : Infinity;
  }

  /** A pool of a snapshot (`snapshotted`, with its references), or one more reference acquired. */
  private applyPool(record: JournalRecord, snapshotted: boolean): void {
    const number = int(record, 'p');
    const existing = this.poolsByNumber.get(number);
    if (existing) {
      if (snapshotted) throw new Error(`pool number ${number} is defined twice`);
      existing.refs++;
      existing.unanswered++;
      return;
    }
    const spec = this.spec(record);
    if (this.pools.has(spec.id)) throw new Error(`pool ${spec.id} is defined twice`);
    const pool = this.createPool(number, spec);
    pool.refs = snapshotted ? int(record, 'refs') : 1;
    if (pool.refs < 1) throw new Error(`pool ${spec.id} has no references`);
    pool.unanswered = snapshotted ? (record.u === undefined ? 0 : Math.min(int(record, 'u'), pool.refs)) : 1;
  }

  private applyAnswered(record: JournalRecord): void {
    const pool = this.poolOf(record);
    if (record.a === undefined) this.answeredAcquire(pool);
    else this.answeredTake(this.address(record), pool);
  }

  /** A due whose address that pool no longer holds as an endpoint's is moot (a release was written first). */
  private applyDue(record: JournalRecord): void {
    const value = this.address(record);
    const by = int(record, 'by');
    if (isEndpointHolder(this.taken.get(value), this.poolOf(record))) this.dues.set(value, by);
  }

  private applyRange(record: JournalRecord): void {
    const key = record.range === null ? '' : str(record, 'range');
    const range = this.lanes.get(key);
    if (!range) throw new Error(`lane '${key}' belongs to no pool`);
    const base = this.cidr.base;
    const next = base + offset(record.next, 'next');
    range.cursor = next < range.lo ? range.lo : next > range.hi + 1n ? range.hi + 1n : next;
    if (!Array.isArray(record.fifo)) throw new Error(`field 'fifo' is not an array`);
    range.fifo.clear();
    range.sweep = undefined;
    for (const item of record.fifo) {
      const value = base + offset(item, 'fifo');
      if (value >= range.lo && value < range.cursor) range.fifo.push(value);
    }
    range.sweepNeeded = record.sweep === true;
  }

  private applyPrefix(record: JournalRecord): void {
    const pool = this.poolOf(record);
    const condition = str(record, 'c') as (typeof PREFIX_CONDITIONS)[number];
    if (!PREFIX_CONDITIONS.includes(condition)) throw new Error(`field 'c' is not a prefix condition`);
    pool.prefixLost = condition === 'valid' ? undefined : { condition, at: int(record, 'at') };
  }

  private applyDevice(record: JournalRecord): void {
    const mac = str(record, 'mac');
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) throw new Error(`field 'mac' is not a MAC address`);
    const value = this.address(record);
    if (this.taken.has(value)) throw new Error(`address ${this.text(value)} is taken twice`);
    this.holdForDevice(value, this.poolOf(record), mac, int(record, 'since'));
  }

  private applyTake(record: JournalRecord, inSnapshot: boolean): void {
    const kind = takeKindOf(record.t);
    if (!kind) throw new Error(`unknown record type '${String(record.t)}'`);
    const value = this.address(record);
    const pool = this.poolOf(record);
    const holder = this.taken.get(value);
    if (holder && !(kind === 'gateway' && holder.kind === 'gateway'))
      throw new Error(`address ${this.text(value)} is taken twice`);
    if (kind === 'dynamic') pool.lane.replayNext(value, this.taken);
    const count = kind === 'gateway' && record.c !== undefined ? int(record, 'c') : 1;
    if (count < 1) throw new Error(`gateway count ${count}`);
    this.mark(value, kind, pool, count);
    // A change line is unanswered until its 'ok' line; a snapshot line says how many of it are ("u").
    const unanswered = !inSnapshot ? 1 : record.u === undefined ? 0 : int(record, 'u');
    if (unanswered > 0) this.markUnanswered(value, pool, Math.min(unanswered, count));
  }
}
