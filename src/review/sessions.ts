import type { Kysely } from 'kysely';
import type { AuditSink } from '../audit/audit-log.js';
import type { RejectionSummary } from '../audit/rejection-summary.js';
import type { Clock } from '../clock.js';
import { randomToken, sha256Base64url } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import { identityFromRow, type Identity, type IdentityRole } from '../identity/identity.js';
import type { Database } from '../store/schema.js';

/** Who may open the read-only review page. Admins may too; the page has no way to change anything. */
export const REVIEW_ROLES: readonly IdentityRole[] = ['reviewer', 'admin'];

export interface ReviewSessionPolicy {
  /** how long a login code may wait to be opened */
  readonly codeTtlMs: number;
  /** how long a browser session lasts after login */
  readonly sessionTtlMs: number;
}

export const DEFAULT_REVIEW_SESSION_POLICY: ReviewSessionPolicy = { codeTtlMs: 60_000, sessionTtlMs: 30 * 60_000 };

export interface LoginCode {
  readonly code: string;
  readonly expiresAt: number;
}

export interface ReviewSession {
  readonly token: string;
  readonly identity: Identity;
  readonly expiresAt: number;
}

const CODE_PREFIX = 'rvc_';
/** 256 bits of CSPRNG output for login codes and session tokens alike. */
const SECRET_BYTES = 32;

/**
 * Browser sessions for the review page. Browsers cannot sign proofs with HSM-held keys, so a
 * reviewer's CLI signs one proof for a one-time login code; opening it swaps the code for a
 * session token kept in a cookie. Only hashes are stored, and every use re-checks the identity.
 */
export class ReviewSessions {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    /** where refused logins are counted: a login code proves nothing about who sent it */
    private readonly rejections: RejectionSummary,
    readonly policy: ReviewSessionPolicy = DEFAULT_REVIEW_SESSION_POLICY,
  ) {}

  /** A login code for `identity`, which the caller has authenticated with a proof. */
  async createLoginCode(identity: Identity): Promise<LoginCode> {
    const code = CODE_PREFIX + randomToken(SECRET_BYTES);
    const now = this.clock.now();
    const expiresAt = now + this.policy.codeTtlMs;
    await this.db.transaction().execute(async (trx) => {
      await this.pruneExpired(trx, now);
      await trx
        .insertInto('review_sessions')
        .values({ code_hash: sha256Base64url(code), identity_id: identity.id, created_at: now, code_expires_at: expiresAt, token_hash: null, expires_at: null })
        .execute();
      await this.audit.append(
        { actor: identity.id, action: 'review.session_created', outcome: 'success', identityId: identity.id, details: { code_sha256: sha256Base64url(code), code_expires_at: expiresAt } },
        trx,
      );
    });
    return { code, expiresAt };
  }

  /**
   * Redeems a login code for a session. The conditional UPDATE is the single-use guarantee: of two
   * racing logins with one code exactly one sees a row change.
   */
  async login(code: string, source: string): Promise<ReviewSession> {
    const codeHash = sha256Base64url(code);
    const token = randomToken(SECRET_BYTES);
    const now = this.clock.now();
    const expiresAt = now + this.policy.sessionTtlMs;
    const identity = await this.db.transaction().execute(async (trx) => {
      const claimed = await trx
        .updateTable('review_sessions')
        .set({ token_hash: sha256Base64url(token), expires_at: expiresAt })
        .where('code_hash', '=', codeHash)
        .where('token_hash', 'is', null)
        .where('code_expires_at', '>', now)
        .returning('identity_id')
        .executeTakeFirst();
      const row = claimed && (await this.reviewer(trx, claimed.identity_id));
      if (!row) return undefined;
      await this.audit.append({ actor: row.id, action: 'review.login', outcome: 'success', identityId: row.id, details: { code_sha256: codeHash, expires_at: expiresAt } }, trx);
      return row;
    });
    if (!identity) {
      this.rejections.record({ source, action: 'review.login', reason: 'session_invalid', sample: { code_sha256: codeHash } });
      throw new TesseraError('session_invalid', 'This login link is unknown, expired or already used; run "tessera review open" for a new one.');
    }
    return { token, identity, expiresAt };
  }

  /** The reviewer behind a session token; deny by default: unknown, expired, revoked or demoted all fail. */
  async authenticate(token: string | undefined): Promise<ReviewSession> {
    if (!token) throw new TesseraError('session_invalid', 'Not signed in: open a login link from "tessera review open".');
    const session = await this.db
      .selectFrom('review_sessions')
      .select(['identity_id', 'expires_at'])
      .where('token_hash', '=', sha256Base64url(token))
      .where('expires_at', '>', this.clock.now())
      .executeTakeFirst();
    const identity = session && (await this.reviewer(this.db, session.identity_id));
    if (!session || !identity) throw new TesseraError('session_invalid', 'The review session has expired or is no longer valid; sign in again.');
    return { token, identity, expiresAt: session.expires_at! };
  }

  /** The identity if it may still review: active (enrolled, not revoked) and holding a review role. */
  private async reviewer(db: Kysely<Database>, identityId: string): Promise<Identity | undefined> {
    const row = await db.selectFrom('identities').selectAll().where('id', '=', identityId).where('status', '=', 'active').where('role', 'in', REVIEW_ROLES).executeTakeFirst();
    return row && identityFromRow(row);
  }

  /** Keeps the table small: codes never redeemed and sessions that ended are of no further use. */
  private async pruneExpired(trx: Kysely<Database>, now: number): Promise<void> {
    await trx
      .deleteFrom('review_sessions')
      .where((eb) => eb.or([eb.and([eb('token_hash', 'is', null), eb('code_expires_at', '<=', now)]), eb('expires_at', '<=', now)]))
      .execute();
  }
}
