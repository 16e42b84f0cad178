import { isDeepStrictEqual } from 'node:util';
import { CompiledQuery, type Insertable, type Kysely, sql } from 'kysely';
import type { Clock } from '../clock.js';
import { type SyncSqlite, sqliteIfIdle } from '../store/database.js';
import { precompiled } from '../store/precompiled.js';
import type { AuditEventTable, Database } from '../store/schema.js';
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
  /**
   * Optional: appends `events` in their order, as one unit inside `executor`'s transaction, with
   * exactly the seqs, hashes and rows that appending them one by one would give. For writers of
   * many events at once (the proxy's group commit); a sink without it gets one append() per event.
   */
  appendMany?(events: readonly AuditEvent[], executor?: Kysely<Database>): Promise<void>;
  /**
   * Optional: append() as synchronous statements inside a transaction the caller holds open on
   * `sqlite` (the SQLite connection behind `db`), for writers that keep a hot transaction from
   * yielding to the event loop while it holds the write lock. Same rows as append().
   */
  appendSync?(event: AuditEvent, db: Kysely<Database>, sqlite: SyncSqlite): void;
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
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  async append(event: AuditEvent, executor: Kysely<Database> = this.db): Promise<void> {
    // Drafted now: the request proof comes from the caller's async context.
    const draft = this.#draft(event);
    if (executor.isTransaction) return appendToChain(executor, draft.draft, draft.details);
    if (executor !== this.db) return executor.transaction().execute((trx) => appendToChain(trx, draft.draft, draft.details));
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
    const sqlite = sqliteIfIdle(this.db);
    if (sqlite) {
      sqlite.transaction(() => appendManyToChainSync(this.db, sqlite, drafts));
      return Promise.resolve();
    }
    return this.db.transaction().execute((trx) => appendManyToChain(trx, drafts));
  }

  /**
   * append() for several events: one chain-head update claims all their seqs, their hashes are
   * chained in memory, the rows go in with multi-row INSERTs and the head hash is set once, so a
   * batch costs a few statements instead of three per event. Same rows as one append() per event.
   */
  async appendMany(events: readonly AuditEvent[], executor: Kysely<Database> = this.db): Promise<void> {
    if (events.length === 0) return;
    const drafts = events.map((event) => this.#draft(event));
    if (executor.isTransaction) return appendManyToChain(executor, drafts);
    // On SQLite, with nothing else in a transaction, the whole batch runs synchronously in its own.
    const sqlite = sqliteIfIdle(executor);
    if (sqlite) return sqlite.transaction(() => appendManyToChainSync(executor, sqlite, drafts));
    await executor.transaction().execute((trx) => appendManyToChain(trx, drafts));
  }

  appendSync(event: AuditEvent, db: Kysely<Database>, sqlite: SyncSqlite): void {
    appendManyToChainSync(db, sqlite, [this.#draft(event)]);
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

/** Columns of an audit_events row, in the order the multi-row INSERT binds them. */
const EVENT_COLUMNS = ['seq', 'at', 'actor', 'action', 'outcome', 'identity_id', 'reason', 'details', 'proof', 'prev_hash', 'hash'] as const;
type EventRow = { readonly [column in (typeof EVENT_COLUMNS)[number]]: Insertable<AuditEventTable>[column] };

/** Rows per INSERT: 64 x 11 = 704 bound values, under SQLite's historical limit of 999. */
const INSERT_CHUNK = 64;

const claimSeqs = precompiled<{ seq: number; hash: string }>(
  (db, count: number) =>
    db
      .updateTable('audit_chain_head')
      .set((eb) => ({ seq: eb('seq', '+', count) }))
      .where('id', '=', sql.lit(1))
      .returning(['seq', 'hash']),
  [2],
);

const setHeadHash = precompiled((db, hash: string) => db.updateTable('audit_chain_head').set({ hash }).where('id', '=', sql.lit(1)), ['hash']);

/** INSERT SQL by row count, per dialect adapter (see precompiled.ts). */
const insertSql = new WeakMap<object, Map<number, string>>();

/** The multi-row INSERTs for `rows`, in chunks, with the SQL text cached per dialect and row count. */
function insertQueries(db: Kysely<Database>, rows: readonly EventRow[]): CompiledQuery[] {
  const adapter = db.getExecutor().adapter;
  let byCount = insertSql.get(adapter);
  if (!byCount) insertSql.set(adapter, (byCount = new Map()));
  const queries: CompiledQuery[] = [];
  for (let start = 0; start < rows.length; start += INSERT_CHUNK) {
    const chunk = rows.slice(start, start + INSERT_CHUNK);
    const parameters: unknown[] = [];
    for (const row of chunk) for (const column of EVENT_COLUMNS) parameters.push(row[column]);
    let text = byCount.get(chunk.length);
    if (text === undefined) {
      const query = db.insertInto('audit_events').values(chunk as EventRow[]).compile();
      // The parameters must be bound row by row in EVENT_COLUMNS order for the cached text to fit.
      if (!isDeepStrictEqual(query.parameters, parameters)) throw new Error('audit: unexpected INSERT parameter order');
      byCount.set(chunk.length, (text = query.sql));
    }
    queries.push(CompiledQuery.raw(text, parameters));
  }
  return queries;
}

/** The rows for `drafts` after the chain head `head` had before claiming their seqs, hashes chained in order. */
function chainRows(head: { seq: number; hash: string } | undefined, drafts: readonly Draft[]): { rows: EventRow[]; hash: string } {
  if (!head) throw new Error('audit: the chain head row is missing');
  let seq = head.seq - drafts.length;
  let prev = head.hash;
  const rows: EventRow[] = [];
  for (const { draft, details } of drafts) {
    const event = { ...draft, seq: ++seq, prev_hash: prev };
    prev = eventHashWithDetails(event, details);
    rows.push({ seq: event.seq, at: event.at, actor: event.actor, action: event.action, outcome: event.outcome, identity_id: event.identity_id, reason: event.reason, details, proof: event.proof, prev_hash: event.prev_hash, hash: prev });
  }
  return { rows, hash: prev };
}

/**
 * appendToChain() for several events: claims all their seqs with one head update (the same lock),
 * chains the hashes in memory in order, inserts the rows in chunks and sets the head hash once.
 */
async function appendManyToChain(trx: Kysely<Database>, drafts: readonly Draft[]): Promise<void> {
  const { rows, hash } = chainRows((await claimSeqs(trx, [drafts.length])).rows[0], drafts);
  for (const query of insertQueries(trx, rows)) await trx.executeQuery(query);
  await setHeadHash(trx, [hash]);
}

/** appendManyToChain() as synchronous statements on SQLite, inside `sqlite`'s open transaction. */
function appendManyToChainSync(db: Kysely<Database>, sqlite: SyncSqlite, drafts: readonly Draft[]): void {
  const { rows, hash } = chainRows(sqlite.all<{ seq: number; hash: string }>(claimSeqs.sql(db), [drafts.length])[0], drafts);
  for (const query of insertQueries(db, rows)) sqlite.run(query.sql, query.parameters);
  sqlite.run(setHeadHash.sql(db), [hash]);
}
