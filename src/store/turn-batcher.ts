interface Waiting<T, R> {
  readonly item: T;
  resolve(result: R): void;
  reject(error: unknown): void;
}

export interface TurnBatch<T, R> {
  /**
   * Does the work for several items as one unit (one transaction, one round trip), all or nothing:
   * if it throws, none of the items took effect. Returns one result per item, in order.
   */
  readonly together: (items: readonly T[]) => R[] | Promise<R[]>;
  /** Does one item's work on its own: a lone item, and each item of a batch that failed. */
  readonly alone: (item: T) => Promise<R>;
  /**
   * Whether a batch that threw left nothing behind, so each item may be retried alone to learn
   * which one failed (default: always). Otherwise every item fails with the batch's error.
   */
  readonly undone?: (error: unknown) => boolean;
  /** At most this many items per batch; more in one turn are split into batches run concurrently. */
  readonly maxItems?: number;
  /**
   * Which items are done together. 'turn' (default): those submitted within one turn of the event
   * loop, done on the next turn: requests arriving separately meet there. 'tick': those submitted
   * before the current turn's promise reactions settle, done right after them, without waiting
   * for a turn: for a step whose submitters were all woken by one earlier batch (its results
   * resolve them together), where waiting a turn would only add that turn's latency.
   */
  readonly gather?: 'turn' | 'tick';
}

/**
 * Group commit for a step on a hot path: the items submitted within one turn of the event loop
 * are done together on the next turn, so N concurrent requests cost one transaction (or round
 * trip) instead of N. Concurrent requests move through the event loop in step, so they meet
 * again at each batched step; a lone request waits one turn and is done alone.
 *
 * A failing item must not fail the others: when a batch throws (and was undone), each of its items
 * is done alone, and only the failing ones fail.
 */
export class TurnBatcher<T, R> {
  #waiting: Waiting<T, R>[] = [];

  constructor(private readonly batch: TurnBatch<T, R>) {}

  submit(item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      if (this.#waiting.length === 0) {
        if (this.batch.gather === 'tick') process.nextTick(() => void this.#run());
        else setImmediate(() => void this.#run());
      }
      this.#waiting.push({ item, resolve, reject });
    });
  }

  async #run(): Promise<void> {
    const waiting = this.#waiting;
    this.#waiting = [];
    const size = this.batch.maxItems ?? waiting.length;
    const batches: Waiting<T, R>[][] = [];
    for (let start = 0; start < waiting.length; start += size) batches.push(waiting.slice(start, start + size));
    await Promise.all(batches.map((batch) => this.#runBatch(batch)));
  }

  async #runBatch(waiting: readonly Waiting<T, R>[]): Promise<void> {
    const alone = (entry: Waiting<T, R>) => this.batch.alone(entry.item).then(entry.resolve, entry.reject);
    if (waiting.length === 1) return alone(waiting[0]!);
    let results: R[];
    try {
      results = await this.batch.together(waiting.map((entry) => entry.item));
    } catch (error) {
      if (this.batch.undone?.(error) ?? true) await Promise.all(waiting.map(alone));
      else for (const entry of waiting) entry.reject(error);
      return;
    }
    waiting.forEach((entry, i) => entry.resolve(results[i]!));
  }
}
