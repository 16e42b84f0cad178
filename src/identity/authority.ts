import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import type { AuditSink } from '../audit/audit-log.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import { FeedCache } from '../changes/feed-cache.js';
import type { Clock } from '../clock.js';
import { base64url } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import { ed25519PublicJwk, keyThumbprint, signCompactJws } from '@tessera-broker/sdk';
import type { Signer } from '../keys/key-store.js';
import { keyStoreKindOf, type KeyStores } from '../keys/registry.js';
import type { Store } from '../store/database.js';
import type { RetiringBrokerKey } from '../store/repositories/broker-keys.js';
import type { Identity } from './identity.js';

export const CREDENTIAL_TYPE = 'tessera-identity+jwt';

/** How long a superseded authority key stays in JWKS by default: credentials it signed outlive it by at most their TTL. */
export const DEFAULT_AUTHORITY_OVERLAP_MS = 24 * 3600_000;
export const MAX_AUTHORITY_OVERLAP_MS = 30 * 24 * 3600_000;

/** The authority key that signs now. */
export interface AuthorityKey {
  readonly signer: Signer;
  readonly kid: string;
}

export interface AuthorityRotation {
  readonly kid: string;
  readonly keyUri: string;
  readonly previousKid: string;
  readonly previousKeyUri: string;
  /** the old key stays in JWKS until then */
  readonly previousNotAfter: number;
}

const jwk = (publicKey: Uint8Array, kid: string): JWK => ({ ...ed25519PublicJwk(publicKey), kid, alg: 'EdDSA', use: 'sig' });

/**
 * The broker's authority key (held in KMS/HSM) and what it signs: identity credentials handed out
 * at enrollment and audit checkpoints, verifiable by anyone against /.well-known/jwks.json.
 *
 * The key rotates (`tessera authority rotate`): the current key's URI is the `authority_key_uri`
 * setting, superseded keys are broker_keys rows. Every broker on the database follows a rotation
 * through the change feed (broker_keys changes), so replicas sign with the new key too.
 */
export class Authority {
  readonly #current: FeedCache<AuthorityKey>;
  readonly #signers = new Map<string, Promise<AuthorityKey>>();

  private constructor(
    private readonly store: Pick<Store, 'repos' | 'transaction'>,
    private readonly keyStores: KeyStores,
    private readonly audit: AuditSink,
    private readonly issuer: string,
    private readonly clock: Clock,
    private readonly credentialTtlSeconds: number,
    feed: ChangeFeed,
  ) {
    this.#current = new FeedCache(feed, 'broker_key');
  }

  static async open(
    deps: { store: Pick<Store, 'repos' | 'transaction'>; keyStores: KeyStores; audit: AuditSink; feed: ChangeFeed; clock: Clock },
    issuer: string,
    credentialTtlSeconds: number,
  ): Promise<Authority> {
    const authority = new Authority(deps.store, deps.keyStores, deps.audit, issuer, deps.clock, credentialTtlSeconds, deps.feed);
    await authority.current(); // fails now, not on the first request, if the key is missing
    return authority;
  }

  /** The key that signs now (re-read after a rotation on any broker). */
  async current(): Promise<AuthorityKey> {
    const key = await this.#current.get('authority', async () => {
      const uri = await this.store.repos.settings.get('authority_key_uri');
      if (!uri) throw new TesseraError('config_invalid', 'No authority key in the database: run "tessera init" first.');
      return this.#open(uri);
    });
    return key!;
  }

  /** What /.well-known/jwks.json publishes: the current key and superseded ones still within their overlap. */
  async jwks(): Promise<{ keys: JWK[] }> {
    const current = await this.current();
    const overlapping = await this.store.repos.brokerKeys.overlapping('authority', this.clock.now());
    return { keys: [jwk(current.signer.publicKey, current.kid), ...overlapping.map(previousJwk)] };
  }

  /**
   * Every authority key ever used, current first: audit checkpoints signed before a rotation verify
   * against it after the overlap ends (/.well-known/audit-jwks.json; never use it for credentials).
   */
  async auditJwks(): Promise<{ keys: JWK[] }> {
    const current = await this.current();
    const previous = await this.store.repos.brokerKeys.all('authority');
    return { keys: [jwk(current.signer.publicKey, current.kid), ...previous.reverse().map(previousJwk)] };
  }

  /**
   * A JWT naming the identity, bound (RFC 7800 cnf.jkt) to the identity key that must sign its
   * proofs: `keyId`, by default the identity's current key.
   */
  async issueCredential(identity: Identity, keyId?: string): Promise<{ token: string; expiresAt: number }> {
    const { signer, kid } = await this.current();
    const iat = Math.floor(this.clock.now() / 1000);
    const exp = iat + this.credentialTtlSeconds;
    const token = await signCompactJws(
      signer,
      { alg: 'EdDSA', typ: CREDENTIAL_TYPE, kid },
      {
        iss: this.issuer,
        sub: identity.id,
        aud: this.issuer,
        iat,
        exp,
        address: identity.address,
        role: identity.role,
        attributes: identity.attributes,
        cnf: { jkt: keyId ?? (await keyThumbprint(identity.publicKey)) },
      },
    );
    return { token, expiresAt: exp * 1000 };
  }

  /**
   * Generates a new authority key in the key store that holds the current one and makes it the
   * signing key; the old one stays in JWKS for `overlapMs` (credentials it signed keep verifying)
   * and in the audit JWKS for good (checkpoints it signed keep verifying).
   */
  async rotate(overlapMs: number, actor: string): Promise<AuthorityRotation> {
    if (!Number.isInteger(overlapMs) || overlapMs < 0 || overlapMs > MAX_AUTHORITY_OVERLAP_MS) {
      throw new TesseraError('invalid_request', `The overlap must be between 0 s and ${MAX_AUTHORITY_OVERLAP_MS / 1000} s.`);
    }
    const previous = await this.current();
    const store = await this.keyStores.get(keyStoreKindOf(previous.signer.uri));
    const signer = await store.createSigningKey({ label: `tessera-authority-${randomBytes(4).toString('hex')}`, tags: { 'tessera:purpose': 'authority' } });
    const kid = await keyThumbprint(signer.publicKey);
    const now = this.clock.now();
    const previousNotAfter = now + overlapMs;
    await this.store.transaction(async (repos) => {
      if ((await repos.settings.get('authority_key_uri')) !== previous.signer.uri) throw new TesseraError('conflict', 'The authority key was rotated meanwhile; try again.');
      await repos.settings.set('authority_key_uri', signer.uri);
      // The broker_keys insert is what the change feed carries to every broker.
      await repos.brokerKeys.add({
        uri: previous.signer.uri,
        purpose: 'authority',
        kid: previous.kid,
        publicKey: base64url.encode(previous.signer.publicKey),
        createdAt: now,
        notAfter: previousNotAfter,
        retiredAt: null,
      });
      await this.audit.append(
        {
          actor,
          action: 'authority.key_rotated',
          outcome: 'success',
          details: { kid, key_uri: signer.uri, public_key: base64url.encode(signer.publicKey), previous_kid: previous.kid, previous_key_uri: previous.signer.uri, previous_not_after: previousNotAfter },
        },
        repos,
      );
    });
    this.#signers.set(signer.uri, Promise.resolve({ signer, kid }));
    return { kid, keyUri: signer.uri, previousKid: previous.kid, previousKeyUri: previous.signer.uri, previousNotAfter };
  }

  /** Audits, once each, superseded authority and wrapping keys whose overlap has ended (run by the prune job). */
  async retireExpiredKeys(): Promise<RetiringBrokerKey[]> {
    const now = this.clock.now();
    const retired: RetiringBrokerKey[] = [];
    for (const key of await this.store.repos.brokerKeys.retirable(now)) {
      await this.store.transaction(async (repos) => {
        if (!(await repos.brokerKeys.markRetired(key.uri, now))) return;
        await this.audit.append({ actor: null, action: 'authority.key_retired', outcome: 'success', details: { kid: key.kid, key_uri: key.uri, not_after: key.notAfter } }, repos);
        retired.push(key);
      });
    }
    return retired;
  }

  /** Opens each key once: a KMS key's public key is a GetPublicKey call. */
  #open(uri: string): Promise<AuthorityKey> {
    let key = this.#signers.get(uri);
    if (!key) {
      key = this.keyStores.signer(uri).then(async (signer) => ({ signer, kid: await keyThumbprint(signer.publicKey) }));
      key.catch(() => this.#signers.delete(uri));
      this.#signers.set(uri, key);
    }
    return key;
  }
}

const previousJwk = (key: RetiringBrokerKey): JWK => jwk(base64url.decode(key.publicKey!), key.kid!);
