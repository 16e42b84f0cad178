import type { Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import type { Database } from '../store/schema.js';
import { canonicalJson } from './canonical.js';
import { type ChainedEvent, eventHashWithDetails } from './chain.js';
import { requestProofFor } from './request-proof.js';

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
  /**
   * The compact JWS the actor signed for the request that caused the event. Left out, it is the
   * verified proof of the HTTP request being served when the actor signed it (request-proof.ts).
   */
  readonly proof?: string | null;
}

/**
 * The audit seam. append() takes the executor of the operation it records, so the event commits or
 * rolls back with it: an operation whose audit write fails does not happen.
 */
export interface AuditSink {
  append(event: AuditEvent, executor?: Kysely<Database>): Promise<void>;
}

/** Appends to the hash chain of docs/PROTOCOL.md §7 in the audit_events table. */
export class DatabaseAuditLog implements AuditSink {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  async append(event: AuditEvent, executor: Kysely<Database> = this.db): Promise<void> {
    // Stored as the RFC 8785 text of the details as JSON sees them (JSON.stringify drops undefined,
    // turns dates to strings): the hash covers that text byte for byte, i.e. exactly what a verifier
    // reads, and a verifier can hash it without parsing and re-encoding it.
    const details = canonicalJson(JSON.parse(JSON.stringify(event.details ?? {})));
    const draft: Omit<ChainedEvent, 'seq' | 'prev_hash' | 'details'> = {
      at: this.clock.now(),
      actor: event.actor,
      action: event.action,
      outcome: event.outcome,
      identity_id: event.identityId ?? null,
      reason: event.reason ?? null,
      proof: event.proof !== undefined ? event.proof : requestProofFor(event.actor),
    };
    if (executor.isTransaction) return appendToChain(executor, draft, details);
    await executor.transaction().execute((trx) => appendToChain(trx, draft, details));
  }
}

/**
 * Claims the next seq by updating the single chain-head row first: that row lock (PostgreSQL) or
 * write lock (SQLite) serialises appenders until the transaction ends, so the chain stays linear
 * across concurrent requests and brokers, and seq has no gaps (a rollback gives the number back).
 */
async function appendToChain(trx: Kysely<Database>, draft: Omit<ChainedEvent, 'seq' | 'prev_hash' | 'details'>, details: string): Promise<void> {
  const head = await trx
    .updateTable('audit_chain_head')
    .set((eb) => ({ seq: eb('seq', '+', 1) }))
    .where('id', '=', 1)
    .returning(['seq', 'hash'])
    .executeTakeFirstOrThrow();
  const event = { ...draft, seq: head.seq, prev_hash: head.hash };
  const hash = eventHashWithDetails(event, details);
  await trx.insertInto('audit_events').values({ ...event, details, hash }).execute();
  await trx.updateTable('audit_chain_head').set({ hash }).where('id', '=', 1).execute();
}
