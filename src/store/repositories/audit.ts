import { isDeepStrictEqual } from 'node:util';
import { CompiledQuery, type Kysely, sql } from 'kysely';
import { precompiled } from '../precompiled.js';
import type { AuditEventTable, Database } from '../schema.js';
import { type SyncSqlite, sqliteIfIdle, sqliteOf } from '../sync-sqlite.js';

export type AuditOutcome = AuditEventTable['outcome'];

/** An audit_events row: the chained event of docs/PROTOCOL.md §7 with its details as stored text. */
export type AuditRow = Readonly<AuditEventTable>;

export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

export interface StoredCheckpoint extends ChainHead {
  readonly at: number;
  readonly jws: string;
}

/**
 * Makes the rows of the events being appended, chained after `head` (the head before their seqs
 * were claimed: theirs are head.seq + 1, ...), and the hash the head then takes.
 */
export type ChainEvents = (head: ChainHead) => { readonly rows: readonly AuditRow[]; readonly hash: string };

export interface AuditFilter {
  /** events about this identity id */
  readonly identityId?: string;
  /** events caused by this identity id */
  readonly actor?: string;
  readonly action?: string;
  readonly outcome?: AuditOutcome;
  /** events about this lease (`details.lease_id`) */
  readonly lease?: string;
  /** events about this backend (`details.backend`) */
  readonly backend?: string;
  /** events whose delegation chain acts for this subject (`details.act.sub`: a user's sub, or the root agent's address) */
  readonly onBehalfOf?: string;
  /** seq strictly greater than this: the cursor for the next page in ascending order */
  readonly after?: number;
  /** seq strictly less than this: the cursor for the next page in descending order */
  readonly before?: number;
  /** epoch ms bounds on `at`, inclusive */
  readonly since?: number;
  readonly until?: number;
  /** seq order; default ascending */
  readonly order?: 'asc' | 'desc';
  readonly limit: number;
}

/** Builds one event read by eventPages() from its columns, in audit_events column order. */
export type MakeEvent<E> = (
  seq: number,
  at: number,
  actor: string | null,
  action: string,
  outcome: AuditOutcome,
  identityId: string | null,
  reason: string | null,
  details: string,
  proof: string | null,
  prevHash: string,
  hash: string,
) => E;

/** The audit log: the hash chain's events, its head, and the signed checkpoints of the head. */
export interface AuditRepository {
  /**
   * Appends `count` events after the chain head, all or nothing: claims their seqs by updating the
   * head row first (which serialises appenders on every broker until the transaction ends), lets
   * `chain` make their rows, inserts them and sets the head hash. Inside a unit of work it joins
   * that transaction; otherwise it runs in its own.
   */
  append(count: number, chain: ChainEvents): Promise<void>;
  /**
   * append() as synchronous statements, inside a transaction the caller holds open synchronously
   * on the embedded (SQLite) store's writer (see audited updates, src/audit/audited-update.ts).
   */
  appendSync(count: number, chain: ChainEvents): void;
  head(): Promise<ChainHead>;
  /** The head and the highest stored seq, read in one statement (they differ only after tampering). */
  snapshot(): Promise<{ head: ChainHead; maxSeq: number }>;
  /** Events with from <= seq <= to in seq order, a page at a time, built by `make`. */
  eventPages<E>(from: number, to: number, make: MakeEvent<E>): AsyncGenerator<E[]>;
  /** A page of events matching `filter`, ordered by seq. */
  list(filter: AuditFilter): Promise<AuditRow[]>;
  lastCheckpoint(): Promise<StoredCheckpoint | undefined>;
  /** Up to `limit` checkpoints with after < seq <= to, in seq order (keyset pages). */
  checkpoints(after: number, to: number, limit: number): Promise<StoredCheckpoint[]>;
  /** Stores a checkpoint unless one for its seq exists: the first one stored stands. */
  insertCheckpoint(checkpoint: StoredCheckpoint): Promise<void>;
}

/** Columns of an audit_events row, in the order the multi-row INSERT binds them. */
const EVENT_COLUMNS = ['seq', 'at', 'actor', 'action', 'outcome', 'identity_id', 'reason', 'details', 'proof', 'prev_hash', 'hash'] as const;

/** Rows per INSERT: 64 x 11 = 704 bound values, under SQLite's historical limit of 999. */
const INSERT_CHUNK = 64;

/** Events per page read straight from SQLite, and per page through kysely. */
const SQLITE_EVENT_PAGE = 1024;
const EVENT_PAGE = 2000;

const claimSeqs = precompiled<ChainHead>(
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

/**
 * SQLite fast paths: appends outside a unit of work run synchronously in their own transaction
 * (one cached statement per step, no promise chain, the write lock held for the statements only),
 * and event pages are read in raw (array) mode, without a keyed object per row.
 */
export class SqlAuditRepository implements AuditRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: 'sqlite' | 'postgres',
  ) {}

  async append(count: number, chain: ChainEvents): Promise<void> {
    if (count === 0) return;
    if (this.db.isTransaction) return this.#appendIn(this.db, count, chain);
    const sqlite = sqliteIfIdle(this.db);
    if (sqlite) return sqlite.transaction(() => this.#appendSyncOn(sqlite, count, chain));
    await this.db.transaction().execute((trx) => this.#appendIn(trx, count, chain));
  }

  appendSync(count: number, chain: ChainEvents): void {
    const sqlite = sqliteOf(this.db);
    if (!sqlite?.database.inTransaction) throw new Error('audit: appendSync needs a transaction held on the SQLite writer');
    if (count > 0) this.#appendSyncOn(sqlite, count, chain);
  }

  async #appendIn(trx: Kysely<Database>, count: number, chain: ChainEvents): Promise<void> {
    const { rows, hash } = chain(headOrThrow((await claimSeqs(trx, [count])).rows[0], count));
    for (const query of insertQueries(trx, rows)) await trx.executeQuery(query);
    await setHeadHash(trx, [hash]);
  }

  #appendSyncOn(sqlite: SyncSqlite, count: number, chain: ChainEvents): void {
    const { rows, hash } = chain(headOrThrow(sqlite.all<ChainHead>(claimSeqs.sql(this.db), [count])[0], count));
    for (const query of insertQueries(this.db, rows)) sqlite.run(query.sql, query.parameters);
    sqlite.run(setHeadHash.sql(this.db), [hash]);
  }

  head(): Promise<ChainHead> {
    return this.db.selectFrom('audit_chain_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  }

  async snapshot(): Promise<{ head: ChainHead; maxSeq: number }> {
    const row = await this.db
      .selectFrom('audit_chain_head')
      .select(['seq', 'hash', (eb) => eb.selectFrom('audit_events').select((e) => e.fn.max('seq').as('m')).as('max_seq')])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    return { head: { seq: row.seq, hash: row.hash }, maxSeq: Number(row.max_seq ?? 0) };
  }

  async *eventPages<E>(from: number, to: number, make: MakeEvent<E>): AsyncGenerator<E[]> {
    const sqlite = sqliteIfIdle(this.db);
    if (sqlite) {
      // Each page is one synchronous statement run, so the connection is free again before anything else uses it.
      const page = sqlite
        .prepare('select seq, at, actor, action, outcome, identity_id, reason, details, proof, prev_hash, hash from audit_events where seq > ? and seq <= ? order by seq limit ?')
        .raw(true);
      for (let after = from - 1; ; ) {
        const rows = page.all(after, to, SQLITE_EVENT_PAGE) as RawEventRow[];
        const events = new Array<E>(rows.length);
        for (let i = 0; i < rows.length; i++) {
          const r = rows[i]!;
          events[i] = make(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]);
        }
        if (events.length > 0) yield events;
        if (rows.length < SQLITE_EVENT_PAGE) return;
        after = rows[rows.length - 1]![0];
      }
    }
    for (let after = from - 1; ; ) {
      const rows = await this.db.selectFrom('audit_events').selectAll().where('seq', '>', after).where('seq', '<=', to).orderBy('seq').limit(EVENT_PAGE).execute();
      if (rows.length > 0) yield rows.map((r) => make(r.seq, r.at, r.actor, r.action, r.outcome, r.identity_id, r.reason, r.details, r.proof, r.prev_hash, r.hash));
      if (rows.length < EVENT_PAGE) return;
      after = rows[rows.length - 1]!.seq;
    }
  }

  list(filter: AuditFilter): Promise<AuditRow[]> {
    let query = this.db
      .selectFrom('audit_events')
      .selectAll()
      .orderBy('seq', filter.order ?? 'asc')
      .limit(filter.limit);
    if (filter.identityId !== undefined) query = query.where('identity_id', '=', filter.identityId);
    if (filter.actor !== undefined) query = query.where('actor', '=', filter.actor);
    if (filter.action !== undefined) query = query.where('action', '=', filter.action);
    if (filter.outcome !== undefined) query = query.where('outcome', '=', filter.outcome);
    if (filter.lease !== undefined) query = query.where(this.#detailsField('lease_id'), '=', filter.lease);
    if (filter.backend !== undefined) query = query.where(this.#detailsField('backend'), '=', filter.backend);
    if (filter.onBehalfOf !== undefined) query = query.where(this.#detailsField('act', 'sub'), '=', filter.onBehalfOf);
    if (filter.after !== undefined) query = query.where('seq', '>', filter.after);
    if (filter.before !== undefined) query = query.where('seq', '<', filter.before);
    if (filter.since !== undefined) query = query.where('at', '>=', filter.since);
    if (filter.until !== undefined) query = query.where('at', '<=', filter.until);
    return query.execute();
  }

  /** A member of the `details` JSON text (a path of keys), as SQL (each dialect has its own JSON functions). */
  #detailsField(...path: ['lease_id'] | ['backend'] | ['act', 'sub']) {
    return this.dialect === 'postgres' ? sql<string>`(details::jsonb #>> ${`{${path.join(',')}}`})` : sql<string>`json_extract(details, ${`$.${path.join('.')}`})`;
  }

  lastCheckpoint(): Promise<StoredCheckpoint | undefined> {
    return this.db.selectFrom('audit_checkpoints').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirst();
  }

  checkpoints(after: number, to: number, limit: number): Promise<StoredCheckpoint[]> {
    return this.db.selectFrom('audit_checkpoints').selectAll().where('seq', '>', after).where('seq', '<=', to).orderBy('seq').limit(limit).execute();
  }

  async insertCheckpoint(checkpoint: StoredCheckpoint): Promise<void> {
    await this.db
      .insertInto('audit_checkpoints')
      .values({ seq: checkpoint.seq, hash: checkpoint.hash, at: checkpoint.at, jws: checkpoint.jws })
      .onConflict((c) => c.column('seq').doNothing())
      .execute();
  }
}

type RawEventRow = [number, number, string | null, string, AuditOutcome, string | null, string | null, string, string | null, string, string];

/** The head before the `count` seqs just claimed (the UPDATE returns the head after it). */
function headOrThrow(claimed: ChainHead | undefined, count: number): ChainHead {
  if (!claimed) throw new Error('audit: the chain head row is missing');
  return { seq: claimed.seq - count, hash: claimed.hash };
}

/** The multi-row INSERTs for `rows`, in chunks, with the SQL text cached per dialect and row count. */
function insertQueries(db: Kysely<Database>, rows: readonly AuditRow[]): CompiledQuery[] {
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
      const query = db.insertInto('audit_events').values(chunk as AuditEventTable[]).compile();
      // The parameters must be bound row by row in EVENT_COLUMNS order for the cached text to fit.
      if (!isDeepStrictEqual(query.parameters, parameters)) throw new Error('audit: unexpected INSERT parameter order');
      byCount.set(chunk.length, (text = query.sql));
    }
    queries.push(CompiledQuery.raw(text, parameters));
  }
  return queries;
}
