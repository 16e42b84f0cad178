import type { AuditSink } from '../audit/audit-log.js';
import type { RejectionSummary } from '../audit/rejection-summary.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import { FeedCache } from '../changes/feed-cache.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import type { Repositories } from '../store/repositories/index.js';
import type { Identity } from './identity.js';
import { bodyHash, checkProof, parseProofHeader, proofReplayableUntil } from './proof.js';

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
const UNAUTHENTICATED_CODES = new Set(['proof_missing', 'proof_malformed', 'proof_unknown_key', 'proof_bad_signature']);

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
  ) {
    this.#identities = new FeedCache(feed, 'identity');
  }

  async authenticate(request: IncomingRequest, options: { allowPending?: boolean } = {}): Promise<Identity> {
    // Not a rejection of the caller (nor audited: the database may be what is unreachable).
    await this.feed.ensureCurrent();
    let claimedKid: string | undefined;
    try {
      const proof = parseProofHeader(request.authorization);
      claimedKid = proof.kid;
      const identity = await this.#identities.get(proof.kid, () => this.repos.identities.findById(proof.kid));
      if (!identity) throw new TesseraError('proof_unknown_key');
      const now = this.clock.now();
      checkProof(proof, identity.publicKey, {
        audience: this.audience,
        method: request.method,
        url: request.url,
        bodyHash: bodyHash(request.body),
        nowSeconds: Math.floor(now / 1000),
      });
      if (identity.status === 'revoked') throw new TesseraError('identity_revoked');
      if (identity.status === 'pending' && !options.allowPending) throw new TesseraError('identity_not_enrolled');
      await this.rememberJti(proof.claims.jti, identity.id, proof.claims.iat);
      return identity;
    } catch (error) {
      if (error instanceof TesseraError) await this.auditRejection(error, claimedKid, request);
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

  private async auditRejection(error: TesseraError, claimedKid: string | undefined, request: IncomingRequest): Promise<void> {
    const details = { method: request.method, url: request.url };
    if (UNAUTHENTICATED_CODES.has(error.code)) {
      this.rejections.record({ source: request.source, action: 'proof.rejected', reason: error.code, sample: { ...details, claimed_kid: claimedKid ?? null } });
      return;
    }
    await this.audit.append({
      actor: claimedKid ?? null,
      action: 'proof.rejected',
      outcome: 'denied',
      identityId: claimedKid ?? null,
      reason: error.code,
      details,
    });
  }
}
