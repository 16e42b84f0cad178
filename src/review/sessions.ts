import type { AuditSink } from '../audit/audit-log.js';
import type { RejectionSummary } from '../audit/rejection-summary.js';
import type { Clock } from '../clock.js';
import { randomToken, sha256Base64url } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import type { Identity, IdentityRole } from '../identity/identity.js';
import type { Store } from '../store/database.js';
import type { Repositories } from '../store/repositories/index.js';

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
    private readonly store: Pick<Store, 'repos' | 'transaction'>,
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
    await this.store.transaction(async (repos) => {
      // Keeps the table small: codes never redeemed and sessions that ended are of no further use.
      await repos.reviewSessions.pruneExpired(now);
      await repos.reviewSessions.insertCode({ codeHash: sha256Base64url(code), identityId: identity.id, createdAt: now, codeExpiresAt: expiresAt });
      await this.audit.append(
        { actor: identity.id, action: 'review.session_created', outcome: 'success', identityId: identity.id, details: { code_sha256: sha256Base64url(code), code_expires_at: expiresAt } },
        repos,
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
    const identity = await this.store.transaction(async (repos) => {
      const claimed = await repos.reviewSessions.redeemCode(codeHash, { tokenHash: sha256Base64url(token), expiresAt }, now);
      const reviewer = claimed && (await this.reviewer(repos, claimed));
      if (!reviewer) return undefined;
      await this.audit.append({ actor: reviewer.id, action: 'review.login', outcome: 'success', identityId: reviewer.id, details: { code_sha256: codeHash, expires_at: expiresAt } }, repos);
      return reviewer;
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
    const session = await this.store.repos.reviewSessions.findSession(sha256Base64url(token), this.clock.now());
    const identity = session && (await this.reviewer(this.store.repos, session.identityId));
    if (!session || !identity) throw new TesseraError('session_invalid', 'The review session has expired or is no longer valid; sign in again.');
    return { token, identity, expiresAt: session.expiresAt };
  }

  /** The identity if it may still review: active (enrolled, not revoked) and holding a review role. */
  private reviewer(repos: Repositories, identityId: string): Promise<Identity | undefined> {
    return repos.identities.findActive(identityId, REVIEW_ROLES);
  }
}
