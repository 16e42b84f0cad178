import type { AuditSink } from '../audit/audit-log.js';
import type { RejectionSummary } from '../audit/rejection-summary.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import { FeedCache } from '../changes/feed-cache.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import type { Repositories } from '../store/repositories/index.js';
import type { Identity } from './identity.js';
import type { SessionRegistry } from '../sessions/session-registry.js';
import { bodyHash, checkProof, isSessionId, parseProofHeader, proofReplayableUntil } from './proof.js';

export interface IncomingRequest {
  readonly authorization: string | undefined;
  readonly method: string;
  /** Absolute URL as the client addressed it: the broker's public URL + path and query. */
  readonly url: string;
  readonly body: Uint8Array | string;
  /** The client's address: anonymous rejections are counted per address. */
  readonly source: string;
}

/** Codes raised before the signature is known to be good: the claimed kid proves nothing. */
const UNAUTHENTICATED_CODES = new Set(['proof_missing', 'proof_malformed', 'proof_unknown_key', 'session_unknown', 'proof_bad_signature']);

/**
 * Turns a request's proof into the identity that signed it, checking current state on every call:
 * a revoked identity fails on its very next request. Every rejection is audited: one event each
 * once the signature is good, counted into the window's summary before (anyone can send those).
 *
 * Identities are cached and dropped by the change feed when any broker changes them; a replica that
 * cannot confirm its feed is current refuses (`replica_stale`) rather than trust its cache. The
 * replay cache is never cached: every jti goes to the shared table, so a proof one replica accepted
 * is refused by all.
 */
export class ProofAuthenticator {
  readonly #identities: FeedCache<Identity>;

  constructor(
    /** Store.repos: the identity lookup reads through Store.reader, not queueing behind other requests' transactions. */
    private readonly repos: Pick<Repositories, 'identities' | 'replayCache'>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly audience: string,
    private readonly rejections: RejectionSummary,
    private readonly feed: ChangeFeed,
    private readonly sessions: SessionRegistry,
  ) {
    this.#identities = new FeedCache(feed, 'identity');
  }

  /**
   * `allowPending`: also identities that have not enrolled (redeeming a ticket). `primaryKeyOnly`:
   * refuse session proofs (registering a session must be proven by the primary key).
   */
  async authenticate(request: IncomingRequest, options: { allowPending?: boolean; primaryKeyOnly?: boolean } = {}): Promise<Identity> {
    // Not a rejection of the caller (nor audited: the database may be what is unreachable).
    await this.feed.ensureCurrent();
    let claimedKid: string | undefined;
    /** the identity the proof speaks for, once known (a session proof's kid names its session) */
    let signerId: string | undefined;
    try {
      const proof = parseProofHeader(request.authorization);
      claimedKid = proof.kid;
      // A session proof (docs/PROTOCOL.md §3.1) is verified with the session key its certificate
      // bound, both served from caches: no query beyond the jti insert.
      const session = isSessionId(proof.kid) ? await this.sessions.find(proof.kid) : undefined;
      if (isSessionId(proof.kid)) {
        if (!session) throw new TesseraError('session_unknown');
        if (proof.claims.iss !== session.identityId) throw new TesseraError('proof_malformed', "Malformed proof: a session proof's iss must be its session's identity.");
      }
      const identityId = session?.identityId ?? proof.kid;
      signerId = identityId;
      const identity = await this.#identities.get(identityId, () => this.repos.identities.findById(identityId));
      if (!identity) throw new TesseraError('proof_unknown_key');
      const now = this.clock.now();
      checkProof(proof, session?.publicKey ?? identity.publicKey, {
        audience: this.audience,
        method: request.method,
        url: request.url,
        bodyHash: bodyHash(request.body),
        nowSeconds: Math.floor(now / 1000),
      });
      if (session) {
        if (options.primaryKeyOnly) throw new TesseraError('forbidden', 'This request must be proven by the identity key itself, not a session key.');
        // Revoking or suspending the identity ends its sessions (revoked_at); its status says so too, whichever the cache saw first.
        if (session.revokedAt !== null || identity.status === 'revoked' || identity.status === 'suspended') throw new TesseraError('session_revoked');
        if (now >= session.expiresAt) throw new TesseraError('session_expired');
      }
      if (identity.status === 'revoked') throw new TesseraError('identity_revoked');
      if (identity.status === 'suspended') throw new TesseraError('identity_suspended');
      // Deny by default: only active identities, and pending ones where enrollment allows it.
      if (identity.status !== 'active' && !(identity.status === 'pending' && options.allowPending)) throw new TesseraError('identity_not_enrolled');
      await this.rememberJti(proof.claims.jti, identity.id, proof.claims.iat);
      return identity;
    } catch (error) {
      if (error instanceof TesseraError) await this.auditRejection(error, claimedKid, signerId, request);
      throw error;
    }
  }

  /**
   * A jti is kept as long as a proof carrying it could still pass the iat window: derived from the
   * proof's iat, not from its first use (a proof dated +60 s is good for two minutes after it).
   */
  private async rememberJti(jti: string, identityId: string, iat: number): Promise<void> {
    const fresh = await this.repos.replayCache.remember(`${identityId}:${jti}`, identityId, proofReplayableUntil(iat));
    if (!fresh) throw new TesseraError('proof_replayed');
  }

  /** Deletes only jtis whose proofs can no longer be accepted, however often it runs. */
  async pruneReplayCache(): Promise<void> {
    await this.repos.replayCache.prune(this.clock.now());
  }

  private async auditRejection(error: TesseraError, claimedKid: string | undefined, signerId: string | undefined, request: IncomingRequest): Promise<void> {
    const details = { method: request.method, url: request.url };
    if (UNAUTHENTICATED_CODES.has(error.code)) {
      this.rejections.record({ source: request.source, action: 'proof.rejected', reason: error.code, sample: { ...details, claimed_kid: claimedKid ?? null } });
      return;
    }
    await this.audit.append({
      actor: signerId ?? null,
      action: 'proof.rejected',
      outcome: 'denied',
      identityId: signerId ?? null,
      reason: error.code,
      details: claimedKid !== undefined && isSessionId(claimedKid) ? { ...details, session_id: claimedKid } : details,
    });
  }
}
