import { type Kysely, type Migration, sql } from 'kysely';
import type { SqlDialect } from '../database.js';
import { createChangeTriggers } from './change-triggers.js';

/** The tables whose rows replicas may cache, the change kind each one is, and its key column. */
const WATCHED = [
  { table: 'identities', kind: 'identity', key: 'id' },
  { table: 'leases', kind: 'lease', key: 'id' },
  { table: 'grants', kind: 'grant', key: 'id' },
  { table: 'backends', kind: 'backend', key: 'name' },
] as const;

/**
 * The change feed (src/changes/): one row per changed row of a watched table, written by triggers
 * in the transaction that changes it, so no write path can forget it and a rolled-back change
 * leaves none. PostgreSQL also records the writing transaction's id (readers use it to take each
 * committed row exactly once, whatever order concurrent transactions commit in) and sends one
 * NOTIFY per transaction on commit. Frozen code: imports nothing live.
 */
export function changes(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      if (dialect === 'postgres') {
        await sql`CREATE TABLE changes (
          id bigserial PRIMARY KEY,
          tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
          at bigint NOT NULL DEFAULT (extract(epoch from clock_timestamp()) * 1000)::bigint,
          kind text NOT NULL,
          key text NOT NULL
        )`.execute(db);
        await sql`CREATE INDEX changes_tx ON changes (tx)`.execute(db);
        await sql`CREATE FUNCTION tessera_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
          DECLARE
            changed_row jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
          BEGIN
            INSERT INTO changes (kind, key) VALUES (TG_ARGV[0], changed_row ->> TG_ARGV[1]);
            -- Delivered on commit, once per transaction (equal payloads are folded).
            PERFORM pg_notify('tessera_changes', '');
            RETURN NULL;
          END $$`.execute(db);
      } else {
        await sql`CREATE TABLE changes (
          id integer PRIMARY KEY AUTOINCREMENT,
          at integer NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS integer)),
          kind text NOT NULL,
          key text NOT NULL
        )`.execute(db);
      }
      for (const table of WATCHED) await createChangeTriggers(db, dialect, table);
      await sql`CREATE INDEX changes_at ON changes (at)`.execute(db);
    },
  };
}
