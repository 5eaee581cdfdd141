// The record writes of a DHCP CreateEndpoint (LeaseRecordWrites) against a store that keeps what it is given: in
// order, one at a time, each marked unanswered; the first that fails stops the exchanges once, and is what the
// request fails with rather than the exchange's own error.
import { describe, expect, it } from 'vitest';
import { LeaseRecordWrites } from '../../../src/driver/dhcp-records';
import type { EndpointRecord } from '../../../src/driver/endpoint-naming';
import type { RecordStore } from '../../../src/state/record-store';

const record = (n: number): EndpointRecord => ({ id: 'e1', networkId: 'n1', mac: `02:00:00:00:00:0${n}` });

/** A store whose puts take a turn of the event loop each, and fail where `failing` says. */
function store(failing: (n: number) => boolean = () => false) {
  const puts: { record: EndpointRecord; at: number }[] = [];
  let running = 0;
  let most = 0;
  const fake = {
    async put(_id: string, value: EndpointRecord) {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setTimeout(resolve, 2));
      running--;
      if (failing(puts.length + 1)) {
        puts.push({ record: value, at: -1 });
        throw new Error('EIO: injected i/o error');
      }
      puts.push({ record: value, at: puts.length });
    },
  };
  return { fake: fake as unknown as RecordStore<EndpointRecord>, puts, most: () => most };
}

describe('LeaseRecordWrites', () => {
  it('writes in order, one at a time, each marked unanswered; settled once all are on disk', async () => {
    const { fake, puts, most } = store();
    let stopped = 0;
    const writes = new LeaseRecordWrites(fake, () => stopped++);
    writes.write(record(1), 'p1');
    writes.write(record(2), 'p2');
    writes.write(record(3), 'p3');
    expect(puts).toEqual([]); // nothing waits for them
    await writes.settled();
    expect(puts.map((p) => p.record)).toEqual([1, 2, 3].map((n) => ({ ...record(n), unanswered: true })));
    expect(most()).toBe(1);
    expect(writes.written).toEqual(record(3));
    expect(stopped).toBe(0);
  });

  it('the first write that fails stops the exchanges once; the request fails with it, not with what the stop caused', async () => {
    const { fake, puts } = store((n) => n >= 2);
    let stopped = 0;
    let stop!: (error: Error) => void;
    const exchange = new Promise<string>((_resolve, reject) => (stop = reject));
    const writes = new LeaseRecordWrites(fake, () => {
      stopped++;
      stop(new Error('the DHCP client was released before it got a lease'));
    });
    writes.write(record(1), 'p1');
    writes.write(record(2), 'p2');
    writes.write(record(3), 'p3'); // after a failure: never written
    await expect(writes.around(exchange)).rejects.toThrow('EIO: injected i/o error');
    await expect(writes.settled()).rejects.toThrow('EIO');
    expect(stopped).toBe(1);
    expect(puts.length).toBe(2);
    expect(writes.written).toEqual(record(1));
  });

  it('an exchange that fails on its own fails with its own error; one that succeeds gives its result', async () => {
    const writes = new LeaseRecordWrites(store().fake, () => undefined);
    writes.write(record(1), 'p1');
    await expect(writes.around(Promise.reject(new Error('no DHCP server answered')))).rejects.toThrow(
      'no DHCP server answered',
    );
    await expect(writes.around(Promise.resolve('lease'))).resolves.toBe('lease');
  });
});
