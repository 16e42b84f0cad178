import type { Kysely } from 'kysely';
import type { AuditEvent, AuditSink } from '../audit/audit-log.js';
import type { Database } from '../store/schema.js';

interface Waiting {
  readonly event: AuditEvent;
  resolve(): void;
  reject(error: unknown): void;
}

const MAX_BATCH = 512;

/**
 * How long an event nobody waits for (a call's outcome, recorded after its response went out) may
 * wait for the next batch before it is written on its own. Under load it rides along with the next
 * call's commit instead of costing a commit of its own.
 */
const LINGER_MS = 20;

/**
 * Group commit for the proxy's per-call audit events: events appended while a transaction is being
 * written go into the next one, so N concurrent calls cost one transaction instead of N.
 *
 * - append(): the caller waits until the event is committed (before forwarding a call), so a batch
 *   is written on the next turn of the event loop; it rejects if the batch fails.
 * - defer(): nobody waits (the call is over), so the event joins the next batch, or is written
 *   within LINGER_MS if none comes. drained() writes lingering events at once.
 */
export class GroupCommitAudit {
  #waiting: Waiting[] = [];
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
    const committed = this.#enqueue(event);
    this.#flushSoon();
    return committed;
  }

  defer(event: AuditEvent): Promise<void> {
    const committed = this.#enqueue(event);
    if (!this.#flushing && this.#linger === undefined) this.#linger = setTimeout(() => this.#flushSoon(), LINGER_MS);
    return committed;
  }

  /** Writes what lingers now; resolves once everything appended so far is written (or has failed). */
  drained(): Promise<void> {
    if (this.#linger !== undefined) this.#flushSoon();
    return this.#idle;
  }

  #enqueue(event: AuditEvent): Promise<void> {
    if (this.#waiting.length === 0 && !this.#flushing) this.#idle = new Promise((done) => (this.#markIdle = done));
    return new Promise((resolve, reject) => this.#waiting.push({ event, resolve, reject }));
  }

  #flushSoon(): void {
    clearTimeout(this.#linger);
    this.#linger = undefined;
    if (this.#flushing) return;
    this.#flushing = true;
    // One turn of the event loop lets the calls arriving together join the first batch.
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    const batch = this.#waiting.splice(0, MAX_BATCH);
    try {
      const events = batch.map((waiting) => waiting.event);
      // One multi-event append in its own transaction where the sink has it (a few statements per
      // batch, synchronous on SQLite), else one append per event in a shared transaction.
      if (this.audit.appendMany) await this.audit.appendMany(events);
      else await this.db.transaction().execute(async (trx) => {
        for (const event of events) await this.audit.append(event, trx);
      });
      for (const waiting of batch) waiting.resolve();
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
    // Checked and cleared synchronously, so an append can never find the flag set with no flush coming.
    this.#flushing = false;
    if (this.#waiting.length > 0) this.#flushSoon();
    else this.#markIdle();
  }
}
