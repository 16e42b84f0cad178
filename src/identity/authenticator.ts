import type { AuditSink } from '../audit/audit-log.js';
import type { RejectionSummary } from '../audit/rejection-summary.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import type { Repositories } from '../store/repositories/index.js';
import { type Identity, keyAcceptsAt } from './identity.js';
import type { IdentityCache, KnownIdentity } from './identity-cache.js';
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

const MAX_KEY_OWNERS = 10_000;

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
  /** key id -> identity id: fixed once a key is registered, so kept without invalidation (bounded). */
  readonly #owners = new Map<string, string>();

  constructor(
    /** Store.repos: the identity lookup reads through Store.reader, not queueing behind other requests' transactions. */
    private readonly repos: Pick<Repositories, 'identityKeys' | 'replayCache'>,
    /** the identities' cache the change feed keeps correct (shared with the delegation chain checks) */
    private readonly identities: IdentityCache,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly audience: string,
    private readonly rejections: RejectionSummary,
    private readonly feed: ChangeFeed,
    private readonly sessions: SessionRegistry,
  ) {}

  /**
   * `allowPending`: also identities that have not enrolled (redeeming a ticket). `primaryKeyOnly`:
   * refuse session proofs (registering a session must be proven by the primary key). The identity
   * with its keys as they were checked (so registering a session need not read them again).
   */
  async authenticate(request: IncomingRequest, options: { allowPending?: boolean; primaryKeyOnly?: boolean } = {}): Promise<KnownIdentity> {
    // Not a rejection of the caller (nor audited: the database may be what is unreachable).
    await this.feed.ensureCurrent();
    let claimedKid: string | undefined;
    /** once the key is known: its identity (a session's kid names the session, a rotated-in key's kid is not the identity id) */
    let identityId: string | undefined;
    try {
      const proof = parseProofHeader(request.authorization);
      claimedKid = proof.kid;
      // A session proof (docs/PROTOCOL.md §3.1) is verified with the session key its certificate
      // bound, both served from caches: no query beyond the jti insert.
      const session = isSessionId(proof.kid) ? await this.sessions.find(proof.kid) : undefined;
      if (isSessionId(proof.kid) && !session) throw new TesseraError('session_unknown');
      const known = session ? await this.identities.get(session.identityId) : await this.#identityOfKey(proof.kid);
      if (session && proof.claims.iss !== session.keyId) throw new TesseraError('proof_malformed', "Malformed proof: a session proof's iss must be the key that certified its session.");
      // The primary key: the proof's own, or the one that certified the session.
      const key = known?.keys.get(session?.keyId ?? proof.kid);
      if (!known || !key) throw new TesseraError('proof_unknown_key');
      const { identity } = known;
      identityId = identity.id;
      const now = this.clock.now();
      checkProof(proof, session?.publicKey ?? key.publicKey, {
        audience: this.audience,
        method: request.method,
        url: request.url,
        bodyHash: bodyHash(request.body),
        nowSeconds: Math.floor(now / 1000),
      });
      // A retired key's sessions end with it.
      if (!keyAcceptsAt(key, now)) throw new TesseraError('key_retired');
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
      return known;
    } catch (error) {
      if (error instanceof TesseraError) await this.auditRejection(error, claimedKid, identityId, request);
      throw error;
    }
  }

  /**
   * The identity a key belongs to. A key that never rotated has the identity id as its key id, so
   * the common case costs one cached lookup; a rotated-in key is mapped to its identity once.
   */
  async #identityOfKey(keyId: string): Promise<KnownIdentity | undefined> {
    let identityId = this.#owners.get(keyId) ?? keyId;
    let known = await this.identities.get(identityId);
    if (!known?.keys.has(keyId)) {
      const owner = await this.repos.identityKeys.identityOf(keyId);
      if (owner === undefined || owner === identityId) return known;
      identityId = owner;
      known = await this.identities.get(identityId);
    }
    if (identityId !== keyId) {
      if (this.#owners.size >= MAX_KEY_OWNERS) this.#owners.clear();
      this.#owners.set(keyId, identityId);
    }
    return known;
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
  /** On `repos` when given (a job's own connection, src/store/exclusive.ts). */
  async pruneReplayCache(repos: Pick<Repositories, 'replayCache'> = this.repos): Promise<void> {
    await repos.replayCache.prune(this.clock.now());
  }

  private async auditRejection(error: TesseraError, claimedKid: string | undefined, identityId: string | undefined, request: IncomingRequest): Promise<void> {
    const details: Record<string, string> = { method: request.method, url: request.url };
    // A session's kid, or a rotated-in key's, is not the identity id: the event names what signed.
    if (identityId !== undefined && claimedKid !== undefined && identityId !== claimedKid) details[isSessionId(claimedKid) ? 'session_id' : 'key_id'] = claimedKid;
    if (UNAUTHENTICATED_CODES.has(error.code)) {
      this.rejections.record({ source: request.source, action: 'proof.rejected', reason: error.code, sample: { ...details, claimed_kid: claimedKid ?? null } });
      return;
    }
    const actor = identityId ?? claimedKid ?? null;
    await this.audit.append({
      actor,
      action: 'proof.rejected',
      outcome: 'denied',
      identityId: actor,
      reason: error.code,
      details,
    });
  }
}
