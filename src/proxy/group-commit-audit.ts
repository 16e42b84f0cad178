import type { Kysely } from 'kysely';
import type { AuditEvent, AuditSink } from '../audit/audit-log.js';
import type { Database } from '../store/schema.js';
import { repositoriesOn } from '../store/repositories/index.js';

interface Waiting {
  readonly event: AuditEvent;
  resolve(): void;
  reject(error: unknown): void;
}

const MAX_BATCH = 512;

/**
 * Events nobody waits for (a call's outcome, recorded after its response went out) are written
 * together: within this long, or as soon as this many have gathered. Kept out of the batches calls
 * wait for, they add neither rows nor pages to those commits.
 */
const LINGER_MS = 100;
const DEFERRED_BATCH = 256;

/**
 * Group commit for the proxy's per-call audit events: events appended while a transaction is being
 * written go into the next one, so N concurrent calls cost one transaction instead of N.
 *
 * - append(): the caller waits until the event is committed (before forwarding a call), so a batch
 *   is written on the next turn of the event loop; it rejects if the batch fails.
 * - defer(): nobody waits (the call is over), so the event is written with other deferred ones
 *   within LINGER_MS. drained() writes them at once.
 */
export class GroupCommitAudit {
  readonly #urgent: Waiting[] = [];
  readonly #deferred: Waiting[] = [];
  /** The deferred events go into the next batch (their time is up, or there are enough of them). */
  #deferredDue = false;
  /** A flush is queued or running. */
  #flushing = false;
  #linger: NodeJS.Timeout | undefined;
  #idle: Promise<void> = Promise.resolve();
  #markIdle: () => void = () => undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditSink,
  ) {}

  append(event: AuditEvent): Promise<void> {
    const committed = this.#enqueue(this.#urgent, event);
    this.#flushSoon();
    return committed;
  }

  defer(event: AuditEvent): Promise<void> {
    const committed = this.#enqueue(this.#deferred, event);
    if (this.#deferred.length >= DEFERRED_BATCH) this.#deferredNow();
    else this.#linger ??= setTimeout(() => this.#deferredNow(), LINGER_MS);
    return committed;
  }

  /** Writes deferred events now; resolves once everything appended so far is written (or has failed). */
  drained(): Promise<void> {
    if (this.#deferred.length > 0) this.#deferredNow();
    return this.#idle;
  }

  #enqueue(queue: Waiting[], event: AuditEvent): Promise<void> {
    if (this.#urgent.length === 0 && this.#deferred.length === 0 && !this.#flushing) this.#idle = new Promise((done) => (this.#markIdle = done));
    return new Promise((resolve, reject) => queue.push({ event, resolve, reject }));
  }

  #deferredNow(): void {
    clearTimeout(this.#linger);
    this.#linger = undefined;
    if (this.#deferred.length === 0) return; // an earlier batch took them
    this.#deferredDue = true;
    this.#flushSoon();
  }

  #flushSoon(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    // One turn of the event loop lets the calls arriving together join the first batch.
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    const batch = this.#urgent.splice(0, MAX_BATCH);
    if (this.#deferredDue) {
      batch.push(...this.#deferred.splice(0, MAX_BATCH - batch.length));
      this.#deferredDue = this.#deferred.length > 0;
    }
    try {
      const events = batch.map((waiting) => waiting.event);
      // One multi-event append in its own transaction where the sink has it (a few statements per
      // batch, synchronous on SQLite), else one append per event in a shared transaction.
      if (this.audit.appendMany) await this.audit.appendMany(events);
      else await this.db.transaction().execute(async (trx) => {
        for (const event of events) await this.audit.append(event, repositoriesOn(trx));
      });
      for (const waiting of batch) waiting.resolve();
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
    // Checked and cleared synchronously, so an append can never find the flag set with no flush coming.
    this.#flushing = false;
    if (this.#urgent.length > 0 || this.#deferredDue) this.#flushSoon();
    else if (this.#deferred.length === 0) this.#markIdle();
  }
}
