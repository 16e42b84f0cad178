import { type Clock, type Scheduler, systemScheduler } from '../clock.js';
import type { AuditSink } from './audit-log.js';

/**
 * A request refused before anyone could be identified: a junk proof, an unknown lease token, a bad
 * review login code. Anyone can send these at any rate, so they are counted, not written one by one.
 */
export interface AnonymousRejection {
  /** the client address the request came from */
  readonly source: string;
  /** the action a single event would have had, e.g. `proof.rejected`, `proxy.refused` */
  readonly action: string;
  /** error code */
  readonly reason: string;
  /** What the first such request of the window looked like (method, url or path, hashes); never a secret. */
  readonly sample: Readonly<Record<string, string | null>>;
}

export const SUMMARY_ACTION = 'request.rejected.summary';

/** Distinct (source, action, reason) entries kept per window; rejections past it are only counted. */
const MAX_ENTRIES = 10_000;

interface Entry {
  readonly source: string;
  readonly action: string;
  readonly reason: string;
  readonly sample: Readonly<Record<string, string | null>>;
  readonly first_at: number;
  last_at: number;
  count: number;
}

/**
 * Counts anonymous rejections per (source, action, reason) and writes them as ONE chained audit
 * event per window (docs/PROTOCOL.md §7, `request.rejected.summary`): a flood of junk costs a few
 * map updates instead of a durable write per request, and a reviewer still sees who hammered what.
 * flush() writes the window so far; start() flushes every window while the broker runs and its
 * stop function flushes what is left.
 */
export class RejectionSummary {
  #entries = new Map<string, Entry>();
  #overflow = 0;
  #windowStart: number;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    readonly windowMs: number,
  ) {
    this.#windowStart = clock.now();
  }

  record(rejection: AnonymousRejection): void {
    const key = `${rejection.source}\n${rejection.action}\n${rejection.reason}`;
    const now = this.clock.now();
    const entry = this.#entries.get(key);
    if (entry) {
      entry.count += 1;
      entry.last_at = now;
    } else if (this.#entries.size < MAX_ENTRIES) {
      this.#entries.set(key, { source: rejection.source, action: rejection.action, reason: rejection.reason, sample: rejection.sample, first_at: now, last_at: now, count: 1 });
    } else {
      this.#overflow += 1;
    }
  }

  /** Writes the rejections counted since the last flush as one event (none if there were none). */
  flush(): Promise<void> {
    // One flush at a time, in order: windows reach the chain in the order they closed (a failed
    // write loses that window's counts, not the next one's).
    const write = () => this.#write();
    this.#flushing = this.#flushing.then(write, write);
    return this.#flushing;
  }

  async #write(): Promise<void> {
    const windowEnd = this.clock.now();
    const entries = [...this.#entries.values()];
    const overflow = this.#overflow;
    const windowStart = this.#windowStart;
    this.#entries = new Map();
    this.#overflow = 0;
    this.#windowStart = windowEnd;
    if (entries.length === 0 && overflow === 0) return;
    const counts = entries
      .sort((a, b) => b.count - a.count || a.first_at - b.first_at)
      .map(({ source, action, reason, count, first_at, last_at, sample }) => ({ source, action, reason, count, first_at, last_at, sample }));
    await this.audit.append({
      actor: null,
      action: SUMMARY_ACTION,
      outcome: 'denied',
      details: { window_start: windowStart, window_end: windowEnd, total: entries.reduce((sum, entry) => sum + entry.count, 0) + overflow, counts, ...(overflow > 0 && { overflow }) },
      proof: null,
    });
  }

  /** Flushes at the end of every window; the returned function stops that and flushes the rest. */
  start(onError: (error: unknown) => void, scheduler: Scheduler = systemScheduler): () => Promise<void> {
    const stop = scheduler.every(this.windowMs, () => this.flush().catch(onError));
    return async () => {
      stop();
      await this.flush().catch(onError);
    };
  }
}
