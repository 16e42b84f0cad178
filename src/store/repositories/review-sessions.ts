import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';

/** Review-page logins: one-time codes and the browser sessions they become, as hashes only. */
export interface ReviewSessionRepository {
  insertCode(code: { codeHash: string; identityId: string; createdAt: number; codeExpiresAt: number }): Promise<void>;
  /**
   * Turns an unredeemed code, unexpired at `now`, into a session with `tokenHash` until `expiresAt`;
   * the identity it was issued to, or undefined. Of two racing redemptions exactly one succeeds.
   */
  redeemCode(codeHash: string, session: { tokenHash: string; expiresAt: number }, now: number): Promise<string | undefined>;
  /** The session with `tokenHash` that has not ended at `now`. */
  findSession(tokenHash: string, now: number): Promise<{ identityId: string; expiresAt: number } | undefined>;
  /** Deletes codes never redeemed that expired, and sessions that ended, at or before `now`. */
  pruneExpired(now: number): Promise<void>;
}

export class SqlReviewSessionRepository implements ReviewSessionRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async insertCode(code: { codeHash: string; identityId: string; createdAt: number; codeExpiresAt: number }): Promise<void> {
    await this.db
      .insertInto('review_sessions')
      .values({ code_hash: code.codeHash, identity_id: code.identityId, created_at: code.createdAt, code_expires_at: code.codeExpiresAt, token_hash: null, expires_at: null })
      .execute();
  }

  async redeemCode(codeHash: string, session: { tokenHash: string; expiresAt: number }, now: number): Promise<string | undefined> {
    const claimed = await this.db
      .updateTable('review_sessions')
      .set({ token_hash: session.tokenHash, expires_at: session.expiresAt })
      .where('code_hash', '=', codeHash)
      .where('token_hash', 'is', null)
      .where('code_expires_at', '>', now)
      .returning('identity_id')
      .executeTakeFirst();
    return claimed?.identity_id;
  }

  async findSession(tokenHash: string, now: number): Promise<{ identityId: string; expiresAt: number } | undefined> {
    const row = await this.db
      .selectFrom('review_sessions')
      .select(['identity_id', 'expires_at'])
      .where('token_hash', '=', tokenHash)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return row && { identityId: row.identity_id, expiresAt: row.expires_at! };
  }

  async pruneExpired(now: number): Promise<void> {
    await this.db
      .deleteFrom('review_sessions')
      .where((eb) => eb.or([eb.and([eb('token_hash', 'is', null), eb('code_expires_at', '<=', now)]), eb('expires_at', '<=', now)]))
      .execute();
  }
}
