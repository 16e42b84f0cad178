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
 * Group commit for the proxy's per-call audit events: events appended while a transaction is being
 * written go into the next one, so N concurrent calls cost one transaction instead of N. Each
 * append() still resolves only once its event is committed (durable before the caller proceeds)
 * and rejects if the batch fails.
 */
export class GroupCommitAudit {
  #waiting: Waiting[] = [];
  #scheduled = false;
  #idle: Promise<void> = Promise.resolve();
  #markIdle: () => void = () => undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditSink,
  ) {}

  append(event: AuditEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ event, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      this.#idle = new Promise((done) => (this.#markIdle = done));
      // One turn of the event loop lets the calls arriving together join the first batch.
      setImmediate(() => void this.#flush());
    });
  }

  /** Resolves once everything appended so far is written (or has failed). */
  drained(): Promise<void> {
    return this.#idle;
  }

  async #flush(): Promise<void> {
    const batch = this.#waiting.splice(0, MAX_BATCH);
    try {
      await this.db.transaction().execute(async (trx) => {
        // One multi-event append where the sink has it (a few statements per batch), else one per event.
        if (this.audit.appendMany) await this.audit.appendMany(batch.map((waiting) => waiting.event), trx);
        else for (const { event } of batch) await this.audit.append(event, trx);
      });
      for (const waiting of batch) waiting.resolve();
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
    // Checked and cleared synchronously, so an append can never find the flag set with no flush coming.
    if (this.#waiting.length > 0) setImmediate(() => void this.#flush());
    else {
      this.#scheduled = false;
      this.#markIdle();
    }
  }
}
