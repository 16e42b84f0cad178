import { describe, expect, it } from 'vitest';
import { type TurnBatch, TurnBatcher } from '../../src/store/turn-batcher.js';

/** A batcher that records each batch it ran (and each item run alone) in `log`. */
function recording(log: string[], options: Partial<TurnBatch<number, number>> = {}): TurnBatcher<number, number> {
  return new TurnBatcher<number, number>({
    together: (items) => {
      log.push(`together ${items.join(',')}`);
      if (items.includes(13)) throw new Error('unlucky');
      return items.map((item) => item * 10);
    },
    alone: async (item) => {
      log.push(`alone ${item}`);
      if (item === 13) throw new Error('unlucky');
      return item * 10;
    },
    ...options,
  });
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('TurnBatcher', () => {
  it("'turn' gathers what is submitted within one turn and does it on the next", async () => {
    const log: string[] = [];
    const batcher = recording(log);
    setImmediate(() => log.push('a turn passed'));
    const results = Promise.all([1, 2, 3].map((item) => batcher.submit(item)));
    expect(await results).toEqual([10, 20, 30]);
    expect(log).toEqual(['a turn passed', 'together 1,2,3']);
  });

  it("'tick' gathers what promise reactions submit together and does it before the next turn", async () => {
    const log: string[] = [];
    const batcher = recording(log, { gather: 'tick' });
    // Submitters woken together by one resolution, at different depths of their promise chains.
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const results = Promise.all([
      woken.then(() => batcher.submit(1)),
      woken.then(async () => {
        await Promise.resolve();
        return batcher.submit(2);
      }),
      woken.then(() => Promise.resolve().then(() => Promise.resolve()).then(() => batcher.submit(3))),
    ]);
    setImmediate(() => log.push('a turn passed'));
    wake();
    expect(await results).toEqual([10, 20, 30]);
    // Done, results delivered, and still no turn has passed.
    expect(log).toEqual(['together 1,2,3']);
    await nextTurn();
    expect(log).toEqual(['together 1,2,3', 'a turn passed']);
  });

  it('splits a gathering into batches of maxItems', async () => {
    const log: string[] = [];
    const batcher = recording(log, { maxItems: 2 });
    expect(await Promise.all([1, 2, 3, 4, 5].map((item) => batcher.submit(item)))).toEqual([10, 20, 30, 40, 50]);
    expect(log).toEqual(['together 1,2', 'together 3,4', 'alone 5']);
  });

  it('retries the items of a failed batch alone, so only the failing one fails', async () => {
    const log: string[] = [];
    const batcher = recording(log);
    const results = await Promise.allSettled([12, 13, 14].map((item) => batcher.submit(item)));
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(log).toEqual(['together 12,13,14', 'alone 12', 'alone 13', 'alone 14']);
  });

  it('fails every item with the batch error when the batch may have left something behind', async () => {
    const log: string[] = [];
    const batcher = recording(log, { undone: () => false });
    const results = await Promise.allSettled([12, 13].map((item) => batcher.submit(item)));
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
    expect(log).toEqual(['together 12,13']);
  });
});
