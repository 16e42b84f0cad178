import { type Kysely, type Migration, sql } from 'kysely';

/**
 * Every lease issue inserts a row and then activates it, and every b-tree a write touches is a
 * page to write (in SQLite's WAL, a frame per page per commit). Three lease indexes serve rows
 * most leases never have: revocation retries (next_attempt_at), proxy tokens (token_hash) and
 * delegations (delegation_id). As partial indexes, the rows without a value are not in them:
 * an issue touches five b-trees instead of eight, its activation four instead of six. Every
 * query using them compares the column, which implies IS NOT NULL in both dialects' planners.
 * Frozen code: imports nothing live.
 */
export function leanHotIndexes(): Migration {
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
    },
  };
}
