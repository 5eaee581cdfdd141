import { describe, expect, it } from 'vitest';
import { DurationHistogram } from '../../../src/stats/duration-histogram';

describe('DurationHistogram', () => {
  it('counts each duration in the first bucket whose bound it does not exceed, the rest above the last', () => {
    const h = new DurationHistogram([0.001, 0.01, 0.1]);
    for (const seconds of [0.0005, 0.001, 0.002, 0.05, 0.1, 3]) h.observe(seconds);
    expect(h.counts).toEqual([2, 1, 2, 1]);
    expect(h.count).toBe(6);
    expect(h.sum).toBeCloseTo(3.1535, 10);
  });

  it('times work that succeeds and work that fails', async () => {
    const h = new DurationHistogram([1]);
    expect(await h.time(async () => 'done')).toBe('done');
    await expect(h.time(() => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(() =>
      h.timeSync(() => {
        throw new Error('sync');
      }),
    ).toThrow('sync');
    expect(h.count).toBe(3);
    expect(h.counts).toEqual([3, 0]);
  });

  it('refuses bounds that do not ascend', () => {
    expect(() => new DurationHistogram([0.1, 0.1])).toThrow(/must ascend/);
  });
});
