import type { AuditSink } from '../audit/audit-log.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import { FeedCache } from '../changes/feed-cache.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import { type Identity, keyAcceptsAt } from '../identity/identity.js';
import type { KnownIdentity } from '../identity/identity-cache.js';
import { PROOF_MAX_SKEW_SECONDS } from '../identity/proof.js';
import type { Store } from '../store/database.js';
import type { Repositories } from '../store/repositories/index.js';
import type { SessionRecord } from '../store/repositories/sessions.js';
import { verifySessionCertificate } from './certificate.js';

export interface SessionPolicy {
  /** the longest exp - iat a certificate may ask for (TESSERA_SESSION_MAX_LIFETIME, at most 1 h) */
  readonly maxLifetimeMs: number;
}

/**
 * Session keys (docs/PROTOCOL.md §3.1). A certificate is verified once, at registration; sessions
 * are then served from a cache the change feed keeps correct (a session ended on any broker drops
 * out of every replica's cache), so a session proof costs no query beyond the jti insert.
 *
 * Clone detection: generations only go up. A certificate whose generation is below the highest the
 * identity registered, or equal to that of one of its live sessions, comes from a second copy of the
 * agent holding the same primary key: the identity is suspended, all its sessions end, and
 * `identity.clone_suspected` is audited.
 */
export class SessionRegistry {
  readonly #cache: FeedCache<SessionRecord>;

  constructor(
    /** Store.repos (its session lookup reads through Store.reader) and units of work */
    private readonly store: Pick<Store, 'repos' | 'transaction'>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    feed: ChangeFeed,
    private readonly policy: SessionPolicy,
  ) {
    this.#cache = new FeedCache(feed, 'session');
  }

  get maxLifetimeSeconds(): number {
    return Math.floor(this.policy.maxLifetimeMs / 1000);
  }

  /** The session `id` names, from the cache; undefined if no broker registered it. */
  find(id: string): Promise<SessionRecord | undefined> {
    return this.#cache.get(id, () => this.store.repos.sessions.find(id));
  }

  /**
   * Registers the certificate `caller` signed (the request was proven by its primary key, against
   * `caller.keys`). Invalid certificates are refused and audited (`session.rejected`); a suspected
   * clone suspends the identity.
   */
  async register(caller: KnownIdentity, certificate: string): Promise<SessionRecord> {
    const { identity } = caller;
    const now = this.clock.now();
    let verified;
    try {
      // Signed by one of the identity's keys still accepted (a rotated-out key only during its grace).
      verified = await verifySessionCertificate(certificate, (keyId) => {
        const key = caller.keys.get(keyId);
        return key && keyAcceptsAt(key, now) ? key.publicKey : undefined;
      });
      const lifetime = verified.exp - verified.iat;
      if (lifetime <= 0) throw new TesseraError('session_certificate_invalid', 'Invalid session certificate: exp must be after iat.');
      if (lifetime * 1000 > this.policy.maxLifetimeMs) {
        throw new TesseraError('session_certificate_invalid', `Invalid session certificate: its lifetime (${lifetime} s) exceeds the maximum of ${this.maxLifetimeSeconds} s.`);
      }
      // Freshly signed, like a proof: an old certificate cannot be registered again later.
      if (Math.abs(verified.iat - Math.floor(now / 1000)) > PROOF_MAX_SKEW_SECONDS) {
        throw new TesseraError('session_certificate_invalid', `Invalid session certificate: iat is more than ${PROOF_MAX_SKEW_SECONDS} s away from the broker clock.`);
      }
    } catch (error) {
      if (error instanceof TesseraError) {
        await this.audit.append({ actor: identity.id, action: 'session.rejected', outcome: 'denied', identityId: identity.id, reason: error.code, details: { message: error.message } });
      }
      throw error;
    }
    const session: SessionRecord = {
      id: verified.sessionId,
      identityId: identity.id,
      keyId: verified.keyId,
      generation: verified.generation,
      publicKey: verified.publicKey,
      certificate,
      issuedAt: verified.iat * 1000,
      expiresAt: verified.exp * 1000,
      createdAt: now,
      revokedAt: null,
    };

    const outcome = await this.store.transaction(async (repos) => {
      const { sessions } = repos;
      const seen = await sessions.lockGenerations(identity.id, session.generation, now);
      const existing = await sessions.find(session.id);
      if (existing) {
        // The same certificate sent again (a retry whose answer was lost) is the same session.
        if (existing.certificate === certificate && existing.revokedAt === null) return { registered: existing };
        throw new TesseraError('conflict', 'This session key is already registered.');
      }
      const clone = (seen.highest !== null && session.generation < seen.highest) || seen.liveSameGeneration !== null;
      if (clone) {
        await this.suspendForClone(repos, identity, session, seen.highest, seen.liveSameGeneration, now);
        return { suspended: true as const };
      }
      await sessions.insert(session);
      await this.audit.append(
        {
          actor: identity.id,
          action: 'session.registered',
          outcome: 'success',
          identityId: identity.id,
          details: { session_id: session.id, generation: session.generation, expires_at: session.expiresAt },
        },
        repos,
      );
      return { registered: session };
    });
    if ('suspended' in outcome) {
      throw new TesseraError('identity_suspended', 'A second copy of this agent was suspected (session generation reused or lower than one already seen); the identity is suspended until an admin reinstates or revokes it.');
    }
    return outcome.registered;
  }

  private async suspendForClone(repos: Repositories, identity: Identity, session: SessionRecord, highest: number | null, liveSameGeneration: string | null, now: number): Promise<void> {
    await repos.identities.suspend(identity.id);
    const ended = await repos.sessions.endAll(identity.id, now);
    await this.audit.append(
      {
        actor: identity.id,
        action: 'identity.clone_suspected',
        outcome: 'denied',
        identityId: identity.id,
        reason: liveSameGeneration !== null ? 'generation_reused' : 'generation_lower',
        details: { session_id: session.id, generation: session.generation, highest_generation: highest, live_session_with_generation: liveSameGeneration, sessions_ended: ended },
      },
      repos,
    );
  }

  close(): void {
    this.#cache.close();
  }
}
