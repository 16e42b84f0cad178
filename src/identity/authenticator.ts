import type { Kysely, Selectable } from 'kysely';
import type { AuditSink } from '../audit/audit-log.js';
import type { RejectionSummary } from '../audit/rejection-summary.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import { FeedCache } from '../changes/feed-cache.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import { sqliteIfIdle } from '../store/database.js';
import { precompiled } from '../store/precompiled.js';
import { SqlIdentityKeyRepository } from '../store/repositories/identity-keys.js';
import type { Database, IdentityTable } from '../store/schema.js';
import { identityFromRow, type Identity, type IdentityKey, keyAcceptsAt } from './identity.js';
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

// The two queries every authenticated request runs, compiled once rather than rebuilt per request.
const identityById = precompiled<Selectable<IdentityTable>>((db, id: string) => db.selectFrom('identities').selectAll().where('id', '=', id), ['kid']);
const insertJti = precompiled((db, jti: string, identityId: string, expiresAt: number) =>
  db.insertInto('proof_replays').values({ jti, identity_id: identityId, expires_at: expiresAt }).onConflict((conflict) => conflict.column('jti').doNothing()),
  ['jti', 'identity', 1],
);

/** An identity and its keys by key id, as cached between requests. */
interface KnownIdentity {
  readonly identity: Identity;
  readonly keys: ReadonlyMap<string, IdentityKey>;
}

interface PendingJti {
  readonly parameters: [key: string, identityId: string, expiresAt: number];
  resolve(fresh: boolean): void;
  reject(error: unknown): void;
}

const MAX_KEY_OWNERS = 10_000;

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
  /** jtis waiting for the next group commit (SQLite). */
  #pendingJtis: PendingJti[] = [];
  readonly #identities: FeedCache<KnownIdentity>;
  /** key id -> identity id: fixed once a key is registered, so kept without invalidation (bounded). */
  readonly #owners = new Map<string, string>();

  constructor(
    private readonly db: Kysely<Database>,
    /** Store.reader: the identity lookup must not queue behind other requests' transactions. */
    private readonly reader: Kysely<Database>,
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
    /** once the key is known: its identity (a rotated key's kid is not the identity id) */
    let identityId: string | undefined;
    try {
      const proof = parseProofHeader(request.authorization);
      claimedKid = proof.kid;
      const known = await this.#identityOfKey(proof.kid);
      const key = known?.keys.get(proof.kid);
      if (!known || !key) throw new TesseraError('proof_unknown_key');
      const { identity } = known;
      identityId = identity.id;
      const now = this.clock.now();
      checkProof(proof, key.publicKey, {
        audience: this.audience,
        method: request.method,
        url: request.url,
        bodyHash: bodyHash(request.body),
        nowSeconds: Math.floor(now / 1000),
      });
      if (!keyAcceptsAt(key, now)) throw new TesseraError('key_retired');
      if (identity.status === 'revoked') throw new TesseraError('identity_revoked');
      if (identity.status === 'pending' && !options.allowPending) throw new TesseraError('identity_not_enrolled');
      await this.rememberJti(proof.claims.jti, identity.id, proof.claims.iat);
      return identity;
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
    let known = await this.#loadIdentity(identityId);
    if (!known?.keys.has(keyId)) {
      const owner = await new SqlIdentityKeyRepository(this.reader).identityOf(keyId);
      if (owner === undefined || owner === identityId) return known;
      identityId = owner;
      known = await this.#loadIdentity(identityId);
    }
    if (identityId !== keyId) {
      if (this.#owners.size >= MAX_KEY_OWNERS) this.#owners.clear();
      this.#owners.set(keyId, identityId);
    }
    return known;
  }

  #loadIdentity(identityId: string): Promise<KnownIdentity | undefined> {
    return this.#identities.get(identityId, async () => {
      const [row] = (await identityById(this.reader, [identityId])).rows;
      if (!row) return undefined;
      const keys = await new SqlIdentityKeyRepository(this.reader).forIdentity(identityId);
      return { identity: identityFromRow(row), keys: new Map(keys.map((key) => [key.keyId, key])) };
    });
  }

  /**
   * A jti is kept as long as a proof carrying it could still pass the iat window: derived from the
   * proof's iat, not from its first use (a proof dated +60 s is good for two minutes after it).
   */
  private async rememberJti(jti: string, identityId: string, iat: number): Promise<void> {
    const parameters: PendingJti['parameters'] = [`${identityId}:${jti}`, identityId, proofReplayableUntil(iat)];
    const fresh = sqliteIfIdle(this.db) ? await this.#groupCommit(parameters) : (await insertJti(this.db, parameters)).numAffectedRows !== 0n;
    if (!fresh) throw new TesseraError('proof_replayed');
  }

  /**
   * SQLite: the jtis of the requests arriving within one turn of the event loop go into one
   * transaction, committed before any of those requests proceeds, instead of one commit each.
   * Each insert still says whether its jti was new, so a replay within a batch is caught too.
   */
  #groupCommit(parameters: PendingJti['parameters']): Promise<boolean> {
    return new Promise((resolve, reject) => {
      if (this.#pendingJtis.length === 0) setImmediate(() => this.#flushJtis());
      this.#pendingJtis.push({ parameters, resolve, reject });
    });
  }

  #flushJtis(): void {
    const batch = this.#pendingJtis;
    this.#pendingJtis = [];
    const sqlite = sqliteIfIdle(this.db);
    if (!sqlite) {
      // A transaction is open on the writer across an await: queue on kysely's connection like any write.
      for (const pending of batch) insertJti(this.db, pending.parameters).then((result) => pending.resolve(result.numAffectedRows !== 0n), pending.reject);
      return;
    }
    let fresh: boolean[];
    try {
      const statement = sqlite.prepare(insertJti.sql(this.db));
      fresh = sqlite.transaction(() => batch.map((pending) => statement.run(pending.parameters).changes !== 0));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, i) => pending.resolve(fresh[i]!));
  }

  /** Deletes only jtis whose proofs can no longer be accepted, however often it runs. */
  async pruneReplayCache(): Promise<void> {
    await this.db.deleteFrom('proof_replays').where('expires_at', '<=', this.clock.now()).execute();
  }

  private async auditRejection(error: TesseraError, claimedKid: string | undefined, identityId: string | undefined, request: IncomingRequest): Promise<void> {
    const details: Record<string, string> = { method: request.method, url: request.url };
    // A rotated key's kid is not the identity id: the event names the key that signed.
    if (identityId !== undefined && claimedKid !== undefined && identityId !== claimedKid) details.key_id = claimedKid;
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
