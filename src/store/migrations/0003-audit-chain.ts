import type { Kysely, Migration } from 'kysely';
import { eventHash, GENESIS_HASH } from '../../audit/chain.js';
import { eventRecordFromRow } from '../../audit/records.js';
import type { Database } from '../schema.js';

const BACKFILL_BATCH = 1000;

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
      const head = await chainExistingEvents(db as Kysely<Database>);
      await (db as Kysely<Database>).insertInto('audit_chain_head').values({ id: 1, ...head }).execute();
    },
  };
}

async function chainExistingEvents(db: Kysely<Database>): Promise<{ seq: number; hash: string }> {
  let seq = 0;
  let hash = GENESIS_HASH;
  let lastOldSeq = 0;
  for (;;) {
    const rows = await db.selectFrom('audit_events').selectAll().where('seq', '>', lastOldSeq).orderBy('seq').limit(BACKFILL_BATCH).execute();
    if (rows.length === 0) return { seq, hash };
    // New numbers never exceed old ones and rows move in ascending order, so no update collides.
    for (const row of rows) {
      seq += 1;
      const event = { ...eventRecordFromRow({ ...row, prev_hash: hash }), seq };
      hash = eventHash(event);
      await db.updateTable('audit_events').set({ seq, prev_hash: event.prev_hash, hash }).where('seq', '=', row.seq).execute();
    }
    lastOldSeq = Number(rows.at(-1)!.seq);
  }
}
