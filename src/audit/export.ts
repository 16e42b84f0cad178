import type { JSONWebKeySet } from 'jose';
import type { Kysely } from 'kysely';
import { sqliteIfIdle } from '../store/database.js';
import { SqlSessionRepository } from '../store/repositories/sessions.js';
import type { AuditEventTable, Database } from '../store/schema.js';
import type { AuditOutcome } from './audit-log.js';
import { STORED_DETAILS, type WithStoredDetails } from './chain.js';
import { type CheckpointRecord, EXPORT_FORMAT, type EventRecord, type ExportRecord, type HeaderRecord, type IdentityRecord, type SessionRecord } from './records.js';
import { type PagedRecords, RECORD_PAGES } from './verify.js';

export interface ExportOptions {
  readonly issuer: string;
  readonly jwks: JSONWebKeySet;
  readonly from?: number;
  readonly to?: number;
  readonly exportedAt: number;
}

const BATCH = 2000;

/**
 * The audit log as export records, read in keyset-paginated batches so memory stays flat however
 * long the log is. The range is fixed when it starts: events appended meanwhile are left out.
 * The verifier takes the same records a page at a time (RECORD_PAGES).
 */
export function exportRecords(db: Kysely<Database>, options: ExportOptions): AsyncGenerator<ExportRecord> & PagedRecords {
  const records = (async function* () {
    for await (const page of exportPages(db, options)) yield* page;
  })();
  return Object.assign(records, { [RECORD_PAGES]: () => exportPages(db, options) });
}

async function* exportPages(db: Kysely<Database>, options: ExportOptions): AsyncGenerator<readonly ExportRecord[]> {
  // One statement, one snapshot: the head row and the highest stored seq (they differ only after tampering).
  const snapshot = await db
    .selectFrom('audit_chain_head')
    .select(['seq', 'hash', (eb) => eb.selectFrom('audit_events').select((e) => e.fn.max('seq').as('m')).as('max_seq')])
    .where('id', '=', 1)
    .executeTakeFirstOrThrow();
  const end = Math.max(snapshot.seq, Number(snapshot.max_seq ?? 0));
  const from = Math.max(1, options.from ?? 1);
  const to = Math.min(end, options.to ?? end);
  // Checkpoints past the last stored event still count when the export runs to the end: they expose a cut tail.
  const checkpointsTo = to === end ? Number.MAX_SAFE_INTEGER : to;
  const header: HeaderRecord = {
    type: 'header',
    format: EXPORT_FORMAT,
    issuer: options.issuer,
    exported_at: options.exportedAt,
    from,
    to,
    head: { seq: snapshot.seq, hash: snapshot.hash },
    jwks: options.jwks,
  };
  yield [header];

  for (let after = ''; ; ) {
    const rows = await db.selectFrom('identities').select(['id', 'public_key']).where('id', '>', after).orderBy('id').limit(BATCH).execute();
    if (rows.length > 0) yield rows.map((row): IdentityRecord => ({ type: 'identity', identity_id: row.id, public_key: row.public_key }));
    if (rows.length < BATCH) break;
    after = rows[rows.length - 1]!.id;
  }
  const sessions = new SqlSessionRepository(db);
  for (let after = ''; ; ) {
    const rows = await sessions.certificatesAfter(after, BATCH);
    if (rows.length > 0) yield rows.map((row): SessionRecord => ({ type: 'session', session_id: row.id, identity_id: row.identityId, certificate: row.certificate }));
    if (rows.length < BATCH) break;
    after = rows[rows.length - 1]!.id;
  }

  const checkpoints = batches(
    from - 1,
    async (after) =>
      (await db.selectFrom('audit_checkpoints').selectAll().where('seq', '>', after).where('seq', '<=', checkpointsTo).orderBy('seq').limit(BATCH).execute()).map(
        (row): CheckpointRecord => ({ type: 'checkpoint', ...row }),
      ),
    (record) => record.seq,
  );
  let checkpoint = await checkpoints.next();
  for await (const events of eventPages(db, from, to)) {
    // Checkpoints are sparse (one per N events): a page without one goes out as it is.
    if (checkpoint.done || checkpoint.value.seq >= events[events.length - 1]!.seq) {
      yield events;
      continue;
    }
    const page: ExportRecord[] = [];
    for (const event of events) {
      for (; !checkpoint.done && checkpoint.value.seq < event.seq; checkpoint = await checkpoints.next()) page.push(checkpoint.value);
      page.push(event);
    }
    yield page;
  }
  const rest: ExportRecord[] = [];
  for (; !checkpoint.done; checkpoint = await checkpoints.next()) rest.push(checkpoint.value);
  if (rest.length > 0) yield rest;
}

/**
 * Events in seq order, a page at a time. On SQLite straight from better-sqlite3 in raw (array) mode:
 * the query builder and a keyed object per row cost more than the read itself. Each page is one
 * synchronous statement run, so the connection is free again before anything else uses it.
 */
async function* eventPages(db: Kysely<Database>, from: number, to: number): AsyncGenerator<EventRecord[]> {
  const sqlite = sqliteIfIdle(db);
  if (sqlite) {
    const page = sqlite
      .prepare(
        'select seq, at, actor, action, outcome, identity_id, reason, details, proof, prev_hash, hash from audit_events where seq > ? and seq <= ? order by seq limit ?',
      )
      .raw(true);
    for (let after = from - 1; ; ) {
      const rows = page.all(after, to, EVENT_PAGE) as RawEventRow[];
      const events = new Array<EventRecord>(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        events[i] = new StoredEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]);
      }
      if (events.length > 0) yield events;
      if (rows.length < EVENT_PAGE) return;
      after = events[events.length - 1]!.seq;
    }
  }
  for (let after = from - 1; ; ) {
    const rows = await db.selectFrom('audit_events').selectAll().where('seq', '>', after).where('seq', '<=', to).orderBy('seq').limit(BATCH).execute();
    if (rows.length > 0) yield rows.map(storedEventFromRow);
    if (rows.length < BATCH) return;
    after = rows[rows.length - 1]!.seq;
  }
}

const EVENT_PAGE = 1024;

type RawEventRow = [number, number, string | null, string, AuditOutcome, string | null, string | null, string, string | null, string, string];

export function storedEventFromRow(row: AuditEventTable): EventRecord {
  return new StoredEvent(row.seq, row.at, row.actor, row.action, row.outcome, row.identity_id, row.reason, row.details, row.proof, row.prev_hash, row.hash);
}

/**
 * An event record read from the database. `details` is parsed from the stored text only when asked
 * for (export to JSON, the verifier's fallback); the verifier hashes the stored text directly.
 */
class StoredEvent implements EventRecord, WithStoredDetails {
  readonly type = 'event' as const;
  readonly [STORED_DETAILS]: string;
  #details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    readonly seq: number,
    readonly at: number,
    readonly actor: string | null,
    readonly action: string,
    readonly outcome: AuditOutcome,
    readonly identity_id: string | null,
    readonly reason: string | null,
    storedDetails: string,
    readonly proof: string | null,
    readonly prev_hash: string,
    readonly hash: string,
  ) {
    this[STORED_DETAILS] = storedDetails;
  }

  get details(): Readonly<Record<string, unknown>> {
    return (this.#details ??= JSON.parse(this[STORED_DETAILS]) as Record<string, unknown>);
  }

  /** The export line: the plain record, members in the usual order. */
  toJSON(): EventRecord {
    const { type, seq, at, actor, action, outcome, identity_id, reason, details, proof, prev_hash, hash } = this;
    return { type, seq, at, actor, action, outcome, identity_id, reason, details, proof, prev_hash, hash };
  }
}

/** Keyset pagination: `page(after)` returns up to BATCH rows with keys above `after`, in key order. */
async function* batches<T, K>(start: K, page: (after: K) => Promise<T[]>, keyOf: (row: T) => K): AsyncGenerator<T> {
  let after = start;
  for (;;) {
    const rows = await page(after);
    yield* rows;
    if (rows.length < BATCH) return;
    after = keyOf(rows.at(-1)!);
  }
}
