import { createHash } from 'node:crypto';
import type { Kysely, Migration } from 'kysely';

const BACKFILL_BATCH = 1000;
const GENESIS_HASH = '0'.repeat(64);

// Frozen code: this file imports nothing of the live broker, so later changes to the audit module
// cannot change what this migration wrote. The hash below is chain format 1 as of this migration.
interface EventRow {
  seq: number;
  at: number;
  actor: string | null;
  action: string;
  outcome: string;
  identity_id: string | null;
  reason: string | null;
  details: string;
  proof: string | null;
  prev_hash: string;
  hash: string;
}
interface ChainTables {
  audit_events: EventRow;
  audit_chain_head: { id: number; seq: number; hash: string };
}

/**
 * The audit hash chain (docs/PROTOCOL.md §7): proof, prev_hash and hash on every event, the
 * chain-head row that serialises appends, and signed checkpoints. Events written before this
 * migration are chained in seq order and renumbered 1..n if rollbacks had left gaps.
 */
export function auditChain(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      // SQLite adds one column per ALTER TABLE.
      await db.schema.alterTable('audit_events').addColumn('proof', 'text').execute();
      await db.schema.alterTable('audit_events').addColumn('prev_hash', 'text', (c) => c.notNull().defaultTo('')).execute();
      await db.schema.alterTable('audit_events').addColumn('hash', 'text', (c) => c.notNull().defaultTo('')).execute();
      await db.schema
        .createTable('audit_chain_head')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('audit_checkpoints')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('jws', 'text', (c) => c.notNull())
        .execute();
      const head = await chainExistingEvents(db as Kysely<ChainTables>);
      await (db as Kysely<ChainTables>).insertInto('audit_chain_head').values({ id: 1, ...head }).execute();
    },
  };
}

async function chainExistingEvents(db: Kysely<ChainTables>): Promise<{ seq: number; hash: string }> {
  let seq = 0;
  let hash = GENESIS_HASH;
  let lastOldSeq = 0;
  for (;;) {
    const rows = await db.selectFrom('audit_events').selectAll().where('seq', '>', lastOldSeq).orderBy('seq').limit(BACKFILL_BATCH).execute();
    if (rows.length === 0) return { seq, hash };
    // New numbers never exceed old ones and rows move in ascending order, so no update collides.
    for (const row of rows) {
      seq += 1;
      const prevHash = hash;
      hash = eventHashV1({ ...row, seq, prev_hash: prevHash });
      await db.updateTable('audit_events').set({ seq, prev_hash: prevHash, hash }).where('seq', '=', row.seq).execute();
    }
    lastOldSeq = Number(rows.at(-1)!.seq);
  }
}

/** SHA-256 (hex) of the RFC 8785 encoding of the event's members other than its hash, details parsed from JSON. */
function eventHashV1(row: Omit<EventRow, 'hash'>): string {
  const { seq, at, actor, action, outcome, identity_id, reason, proof, prev_hash } = row;
  const event = { seq: Number(seq), at: Number(at), actor, action, outcome, identity_id, reason, details: JSON.parse(row.details) as unknown, proof, prev_hash };
  return createHash('sha256').update(jcs(event)).digest('hex');
}

/** RFC 8785: members sorted by UTF-16 code units, no whitespace, ECMAScript number and string forms. */
function jcs(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(jcs).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value as Record<string, unknown>).filter(([, member]) => member !== undefined);
    members.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${members.map(([key, member]) => `${JSON.stringify(key)}:${jcs(member)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
