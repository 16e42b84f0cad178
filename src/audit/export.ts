import { base64url } from '../crypto/encoding.js';
import type { JSONWebKeySet } from 'jose';
import type { Repositories } from '../store/repositories/index.js';
import type { AuditOutcome, MakeEvent } from '../store/repositories/audit.js';
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
export function exportRecords(repos: Pick<Repositories, 'audit' | 'identityKeys' | 'sessions'>, options: ExportOptions): AsyncGenerator<ExportRecord> & PagedRecords {
  const records = (async function* () {
    for await (const page of exportPages(repos, options)) yield* page;
  })();
  return Object.assign(records, { [RECORD_PAGES]: () => exportPages(repos, options) });
}

async function* exportPages({ audit, identityKeys, sessions }: Pick<Repositories, 'audit' | 'identityKeys' | 'sessions'>, options: ExportOptions): AsyncGenerator<readonly ExportRecord[]> {
  // One snapshot: the head row and the highest stored seq (they differ only after tampering).
  const { head, maxSeq } = await audit.snapshot();
  const end = Math.max(head.seq, maxSeq);
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
    head: { seq: head.seq, hash: head.hash },
    jwks: options.jwks,
  };
  yield [header];

  // Every key each identity has had (a rotated identity's proofs are signed by several).
  for (let after = ''; ; ) {
    const keys = await identityKeys.page(after, BATCH);
    if (keys.length > 0) yield keys.map((key): IdentityRecord => ({ type: 'identity', identity_id: key.identityId, public_key: base64url.encode(key.publicKey) }));
    if (keys.length < BATCH) break;
    after = keys[keys.length - 1]!.keyId;
  }
  for (let after = ''; ; ) {
    const rows = await sessions.certificatesAfter(after, BATCH);
    if (rows.length > 0) yield rows.map((row): SessionRecord => ({ type: 'session', session_id: row.id, identity_id: row.identityId, certificate: row.certificate }));
    if (rows.length < BATCH) break;
    after = rows[rows.length - 1]!.id;
  }

  const checkpoints = batches(
    from - 1,
    async (after) =>
      (await audit.checkpoints(after, checkpointsTo, BATCH)).map(
        (row): CheckpointRecord => ({ type: 'checkpoint', ...row }),
      ),
    (record) => record.seq,
  );
  let checkpoint = await checkpoints.next();
  for await (const events of audit.eventPages<EventRecord>(from, to, storedEvent)) {
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

/** Positional, no rest/spread: it runs once per event of a verification. */
const storedEvent: MakeEvent<EventRecord> = (seq, at, actor, action, outcome, identityId, reason, details, proof, prevHash, hash) =>
  new StoredEvent(seq, at, actor, action, outcome, identityId, reason, details, proof, prevHash, hash);

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
