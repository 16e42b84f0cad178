import type { Kysely, Migration } from 'kysely';

/**
 * Review sessions (src/review/sessions.ts): one row per one-time login code, which becomes the
 * browser session once redeemed. Only SHA-256 hashes of the code and the session token are stored.
 */
export function reviewSessions(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('review_sessions')
        .addColumn('code_hash', 'text', (c) => c.primaryKey())
        .addColumn('identity_id', 'text', (c) => c.notNull().references('identities.id'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('code_expires_at', 'bigint', (c) => c.notNull())
        .addColumn('token_hash', 'text')
        .addColumn('expires_at', 'bigint')
        .execute();
      // The per-request lookup. NULLs (codes not yet redeemed) are distinct in both dialects.
      await db.schema.createIndex('review_sessions_token_hash').unique().on('review_sessions').column('token_hash').execute();
    },
  };
}
