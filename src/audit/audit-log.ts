import type { Clock } from '../clock.js';
import type { Repositories } from '../store/repositories/index.js';
import type { AuditOutcome, AuditRow, ChainHead } from '../store/repositories/audit.js';
import { canonicalJson } from './canonical.js';
import { type ChainedEvent, eventHashWithDetails } from './chain.js';
import { requestProofFor } from './request-proof.js';

export type { AuditOutcome };

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
 * The audit seam. append() takes the unit of work of the operation it records (the repositories
 * of its transaction, Store.transaction), so the event commits or rolls back with it: an operation
 * whose audit write fails does not happen.
 */
export interface AuditSink {
  append(event: AuditEvent, within?: Repositories): Promise<void>;
  /**
   * Optional: appends `events` in their order, as one unit (inside `within`'s transaction), with
   * exactly the seqs, hashes and rows that appending them one by one would give. For writers of
   * many events at once (the proxy's group commit); a sink without it gets one append() per event.
   */
  appendMany?(events: readonly AuditEvent[], within?: Repositories): Promise<void>;
  /**
   * Optional: append() as synchronous statements inside a transaction the caller holds open
   * synchronously on the embedded store's writer (AuditRepository.appendSync), for writers that
   * keep a hot transaction from yielding to the event loop while it holds the write lock.
   */
  appendSync?(event: AuditEvent, within: Repositories): void;
}

/** Events one standalone batch writes at most. */
const MAX_STANDALONE_BATCH = 512;

interface QueuedDraft {
  readonly draft: Draft;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Appends to the hash chain of docs/PROTOCOL.md §7 in the audit_events table.
 *
 * Every append locks the one chain-head row until its transaction ends, which serialises appenders
 * of every broker on the database. Events recorded on their own (denials, rejections: no other
 * write to commit with) are group-committed: those arriving while a batch is being written go into
 * the next, one head lock and one commit per batch rather than per event, so many replicas under
 * load queue a few batches on the head instead of a storm of single events.
 */
export class DatabaseAuditLog implements AuditSink {
  #queue: QueuedDraft[] = [];
  #flushing = false;

  constructor(
    /** Store.repos: the store's own, outside any unit of work */
    private readonly repos: Repositories,
    private readonly clock: Clock,
  ) {}

  async append(event: AuditEvent, within: Repositories = this.repos): Promise<void> {
    // Drafted now: the request proof comes from the caller's async context.
    const draft = this.#draft(event);
    if (within !== this.repos) return within.audit.append(1, chainOf([draft]));
    return new Promise((resolve, reject) => {
      this.#queue.push({ draft, resolve, reject });
      if (this.#flushing) return;
      this.#flushing = true;
      // One turn of the event loop lets the events of requests arriving together share the batch.
      setImmediate(() => void this.#flush());
    });
  }

  /** Writes the queued events batch by batch until none are left; resolves or rejects each caller. */
  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_STANDALONE_BATCH);
      try {
        await this.#write(batch.map((queued) => queued.draft));
        for (const queued of batch) queued.resolve();
      } catch (error) {
        for (const queued of batch) queued.reject(error);
      }
    }
    this.#flushing = false;
  }

  #write(drafts: readonly Draft[]): Promise<void> {
    return this.repos.audit.append(drafts.length, chainOf(drafts));
  }

  /**
   * append() for several events: one chain-head update claims all their seqs, their hashes are
   * chained in memory, the rows go in with multi-row INSERTs and the head hash is set once, so a
   * batch costs a few statements instead of three per event. Same rows as one append() per event.
   */
  async appendMany(events: readonly AuditEvent[], within: Repositories = this.repos): Promise<void> {
    if (events.length === 0) return;
    const drafts = events.map((event) => this.#draft(event));
    await within.audit.append(drafts.length, chainOf(drafts));
  }

  appendSync(event: AuditEvent, within: Repositories): void {
    within.audit.appendSync(1, chainOf([this.#draft(event)]));
  }

  #draft(event: AuditEvent): Draft {
    return {
      draft: {
        at: this.clock.now(),
        actor: event.actor,
        action: event.action,
        outcome: event.outcome,
        identity_id: event.identityId ?? null,
        reason: event.reason ?? null,
        proof: event.proof !== undefined ? event.proof : requestProofFor(event.actor),
      },
      details: storedDetails(event.details),
    };
  }
}

interface Draft {
  readonly draft: Omit<ChainedEvent, 'seq' | 'prev_hash' | 'details'>;
  /** canonical JSON text of the details, as stored and hashed */
  readonly details: string;
}

/**
 * The details are stored as the RFC 8785 text of the details as JSON sees them (JSON.stringify
 * drops undefined, turns dates to strings, NaN to null): the hash covers that text byte for byte,
 * i.e. exactly what a verifier reads, and a verifier can hash it without parsing and re-encoding it.
 * A flat plain object of strings, booleans, nulls, finite numbers and undefined (the common case,
 * e.g. every proxy event) survives the JSON round trip unchanged, so it is encoded directly.
 */
function storedDetails(details: Readonly<Record<string, unknown>> | undefined): string {
  if (details === undefined) return '{}';
  return isFlatJson(details) ? canonicalJson(details) : canonicalJson(JSON.parse(JSON.stringify(details)));
}

function isFlatJson(details: object): boolean {
  const prototype = Object.getPrototypeOf(details);
  if ((prototype !== Object.prototype && prototype !== null) || 'toJSON' in details) return false;
  for (const key in details) {
    // for-in also walks inherited enumerable members, which Object.keys (and so JSON) leaves out
    if (!Object.hasOwn(details, key)) return false;
    const value = (details as Record<string, unknown>)[key];
    switch (typeof value) {
      case 'string':
      case 'boolean':
      case 'undefined':
        continue;
      case 'number':
        if (!Number.isFinite(value)) return false;
        continue;
      default:
        if (value !== null) return false;
    }
  }
  return true;
}

/**
 * The rows for `drafts` after chain head `head`, hashes chained in order: what the repository
 * inserts once it has claimed their seqs under the head lock, which keeps the chain linear across
 * concurrent requests and brokers, with no gaps in seq (a rollback gives the numbers back).
 */
function chainOf(drafts: readonly Draft[]): (head: ChainHead) => { rows: AuditRow[]; hash: string } {
  return (head) => {
    let seq = head.seq;
    let prev = head.hash;
    const rows: AuditRow[] = [];
    for (const { draft, details } of drafts) {
      const event = { ...draft, seq: ++seq, prev_hash: prev };
      prev = eventHashWithDetails(event, details);
      rows.push({ seq: event.seq, at: event.at, actor: event.actor, action: event.action, outcome: event.outcome, identity_id: event.identity_id, reason: event.reason, details, proof: event.proof, prev_hash: event.prev_hash, hash: prev });
    }
    return { rows, hash: prev };
  };
}
