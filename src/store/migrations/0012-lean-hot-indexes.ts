import { type Kysely, type Migration, sql } from 'kysely';
import type { SqlDialect } from '../database.js';

/**
 * Every lease issue inserts a row and then activates it, and every b-tree a write touches is a
 * page to write (in SQLite's WAL, a frame per page per commit). Three lease indexes serve rows
 * most leases never have: revocation retries (next_attempt_at), proxy tokens (token_hash) and
 * delegations (delegation_id). As partial indexes, the rows without a value are not in them:
 * an issue touches five b-trees instead of eight, its activation four instead of six. Every
 * query using them compares the column, which implies IS NOT NULL in both dialects' planners.
 *
 * SQLite: the proof replay table, written on every request, keys its rows by jti directly
 * (WITHOUT ROWID) instead of a rowid table plus an index on jti. Frozen code: imports nothing live.
 */
export function leanHotIndexes(dialect: SqlDialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      const partial = [
        { name: 'leases_state_next_attempt_at', columns: 'state, next_attempt_at', column: 'next_attempt_at', unique: false },
        { name: 'leases_token_hash', columns: 'token_hash', column: 'token_hash', unique: true },
        { name: 'leases_delegation', columns: 'delegation_id, state', column: 'delegation_id', unique: false },
      ];
      for (const index of partial) {
        await sql`DROP INDEX ${sql.id(index.name)}`.execute(db);
        await sql`CREATE ${sql.raw(index.unique ? 'UNIQUE ' : '')}INDEX ${sql.id(index.name)} ON leases (${sql.raw(index.columns)}) WHERE ${sql.id(index.column)} IS NOT NULL`.execute(db);
      }
      if (dialect === 'sqlite') {
        await sql`CREATE TABLE proof_replays_by_jti (jti text PRIMARY KEY, identity_id text NOT NULL, expires_at bigint NOT NULL) WITHOUT ROWID`.execute(db);
        await sql`INSERT INTO proof_replays_by_jti (jti, identity_id, expires_at) SELECT jti, identity_id, expires_at FROM proof_replays`.execute(db);
        await sql`DROP TABLE proof_replays`.execute(db);
        await sql`ALTER TABLE proof_replays_by_jti RENAME TO proof_replays`.execute(db);
        await sql`CREATE INDEX proof_replays_expires_at ON proof_replays (expires_at)`.execute(db);
      }
    },
  };
}
