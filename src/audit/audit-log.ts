import type { Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import type { Database } from '../store/schema.js';

export type AuditOutcome = 'success' | 'denied' | 'failure';

export interface AuditEvent {
  /** identity id of whoever caused it; null when the caller could not be authenticated */
  readonly actor: string | null;
  /** dotted verb, e.g. `ticket.redeemed`, `proof.rejected` (docs/PROTOCOL.md lists them) */
  readonly action: string;
  readonly outcome: AuditOutcome;
  readonly identityId?: string | null;
  /** error code or operator-given reason */
  readonly reason?: string | null;
  /** Extra facts. Secrets (tickets, tokens, passwords) only ever as hashes. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * The audit seam. append() takes the executor of the operation it records, so the event commits or
 * rolls back with it: an operation whose audit write fails does not happen.
 */
export interface AuditSink {
  append(event: AuditEvent, executor?: Kysely<Database>): Promise<void>;
}

export class DatabaseAuditLog implements AuditSink {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  async append(event: AuditEvent, executor: Kysely<Database> = this.db): Promise<void> {
    await executor
      .insertInto('audit_events')
      .values({
        at: this.clock.now(),
        actor: event.actor,
        action: event.action,
        outcome: event.outcome,
        identity_id: event.identityId ?? null,
        reason: event.reason ?? null,
        details: JSON.stringify(event.details ?? {}),
      })
      .execute();
  }
}
