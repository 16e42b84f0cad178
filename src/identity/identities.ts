import type { AuditSink } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { isStrictEd25519PublicKey } from '../crypto/ed25519.js';
import { randomToken, sha256Base64url } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import { FailureLimit, type FailureLimitSettings } from '../limits/failure-limit.js';
import type { Store } from '../store/database.js';
import type { Repositories } from '../store/repositories/index.js';
import { keyStoreKindOf } from '../keys/registry.js';
import { base64url } from '../crypto/encoding.js';
import type { Identity, IdentityKey, IdentityRole, IdentityStatus } from './identity.js';

export interface RegisterIdentity {
  readonly address: string;
  readonly publicKey: Uint8Array;
  readonly keyUri: string;
  readonly attributes?: Readonly<Record<string, string>>;
  readonly role?: IdentityRole;
  /** Admin identities created by `tessera init` are active at once; agents must enroll. */
  readonly status?: Extract<IdentityStatus, 'pending' | 'active'>;
}

export interface IssuedTicket {
  readonly identityId: string;
  readonly ticket: string;
  readonly expiresAt: number;
}

export interface TicketPolicy {
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  /** failed redemptions allowed per identity and window (TESSERA_TICKET_FAILURE_LIMIT / _WINDOW) */
  readonly failures: FailureLimitSettings;
}

export interface NewKey {
  readonly publicKey: Uint8Array;
  readonly keyUri: string;
}

export interface KeyRotation {
  readonly identity: Identity;
  readonly key: IdentityKey;
  /** the superseded key, accepted until its notAfter */
  readonly previous: IdentityKey;
}

/** How long the old key of a rotation is accepted by default, and at most. */
export const DEFAULT_ROTATION_GRACE_MS = 10 * 60_000;
export const MAX_ROTATION_GRACE_MS = 7 * 24 * 3600_000;

const TICKET_PREFIX = 'tkt_';
/** 32 bytes = 256 bits of CSPRNG output per ticket. */
const TICKET_BYTES = 32;

/** Identities, their one-time enrollment tickets and their revocation. */
export class IdentityService {
  readonly #failedRedemptions: FailureLimit;

  constructor(
    private readonly store: Pick<Store, 'repos' | 'transaction'>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly tickets: TicketPolicy,
  ) {
    this.#failedRedemptions = new FailureLimit(clock, tickets.failures);
  }

  async register(input: RegisterIdentity, actor: string | null): Promise<Identity> {
    const id = await checkedKeyId(input.publicKey);
    return this.store.transaction(async (repos) => {
      const clash = await repos.identities.findByAddressOrId(input.address, id);
      if (clash || (await repos.identityKeys.identityOf(id)) !== undefined) {
        const what = clash?.address === input.address ? `address ${input.address} is already provisioned` : 'this public key is already registered';
        throw new TesseraError('conflict', `Identity conflict: ${what}.`);
      }
      const identity: Identity = {
        id,
        address: input.address,
        role: input.role ?? 'agent',
        status: input.status ?? 'pending',
        publicKey: input.publicKey,
        keyUri: input.keyUri,
        attributes: { ...input.attributes },
        createdAt: this.clock.now(),
        enrolledAt: input.status === 'active' ? this.clock.now() : null,
        revokedAt: null,
        revokedBy: null,
        revocationReason: null,
      };
      await repos.identities.insert(identity, actor);
      await repos.identityKeys.add({ keyId: id, identityId: id, publicKey: input.publicKey, keyUri: input.keyUri, createdAt: identity.createdAt, notAfter: null, retiredAt: null });
      await this.audit.append(
        { actor, action: 'identity.registered', outcome: 'success', identityId: id, details: { address: input.address, role: identity.role, key_uri: input.keyUri } },
        repos,
      );
      return identity;
    });
  }

  /** Every key the identity has had, oldest first. */
  keysOf(identityId: string): Promise<IdentityKey[]> {
    return this.store.repos.identityKeys.forIdentity(identityId);
  }

  /**
   * Makes `key` the identity's primary key; the identity id stays. The key it replaces signs
   * acceptable proofs for `graceMs` more, then is refused (`key_retired`). The new key must be in
   * the same kind of key store as the old one.
   */
  async rotateKey(address: string, key: NewKey, graceMs: number, actor: string): Promise<KeyRotation> {
    if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > MAX_ROTATION_GRACE_MS) {
      throw new TesseraError('invalid_request', `The grace period must be between 0 s and ${MAX_ROTATION_GRACE_MS / 1000} s.`);
    }
    const keyId = await checkedKeyId(key.publicKey);
    return this.store.transaction(async (repos) => {
      const identity = await repos.identities.findByAddress(address);
      if (!identity) throw new TesseraError('not_found', `No identity with address ${address}.`);
      if (identity.status === 'revoked') throw new TesseraError('identity_revoked', `Identity ${address} is revoked; its key cannot be rotated.`);
      if (keyStoreKindOf(key.keyUri) !== keyStoreKindOf(identity.keyUri)) {
        throw new TesseraError('invalid_request', `The new key must be in the same key store as the current one (${keyStoreKindOf(identity.keyUri)}).`);
      }
      if ((await repos.identityKeys.identityOf(keyId)) !== undefined || (await repos.identities.findByAddressOrId(address, keyId))?.id === keyId) {
        throw new TesseraError('conflict', 'Identity conflict: this public key is already registered.');
      }
      const now = this.clock.now();
      const previous = (await repos.identityKeys.forIdentity(identity.id)).find((k) => k.notAfter === null);
      if (!previous) throw new TesseraError('internal', `Identity ${address} has no current key.`);
      const notAfter = now + graceMs;
      if (!(await repos.identityKeys.supersede(previous.keyId, notAfter))) {
        throw new TesseraError('conflict', `The key of ${address} was rotated meanwhile; try again.`);
      }
      const added: IdentityKey = { keyId, identityId: identity.id, publicKey: key.publicKey, keyUri: key.keyUri, createdAt: now, notAfter: null, retiredAt: null };
      await repos.identityKeys.add(added);
      // The identity row carries the current key; updating it also tells every replica (change feed).
      const updated = await repos.identities.setCurrentKey(identity.id, key);
      await this.audit.append(
        {
          actor,
          action: 'identity.key_rotated',
          outcome: 'success',
          identityId: identity.id,
          details: {
            address,
            key_id: keyId,
            public_key: base64url.encode(key.publicKey),
            key_uri: key.keyUri,
            previous_key_id: previous.keyId,
            previous_key_uri: previous.keyUri,
            previous_not_after: notAfter,
          },
        },
        repos,
      );
      return { identity: updated, key: added, previous: { ...previous, notAfter } };
    });
  }

  /**
   * Records, once per key, that a superseded key's grace has ended (`identity.key_retired`). Proofs
   * by such a key are refused from its notAfter on whether or not this has run; run by the prune job.
   */
  async retireExpiredKeys(): Promise<IdentityKey[]> {
    const now = this.clock.now();
    const retired: IdentityKey[] = [];
    for (const key of await this.store.repos.identityKeys.retirable(now)) {
      await this.store.transaction(async (repos) => {
        if (!(await repos.identityKeys.markRetired(key.keyId, now))) return;
        await this.audit.append(
          { actor: null, action: 'identity.key_retired', outcome: 'success', identityId: key.identityId, details: { key_id: key.keyId, key_uri: key.keyUri, not_after: key.notAfter } },
          repos,
        );
        retired.push({ ...key, retiredAt: now });
      });
    }
    return retired;
  }

  findByAddress(address: string): Promise<Identity | undefined> {
    return this.store.repos.identities.findByAddress(address);
  }

  async getByAddress(address: string): Promise<Identity> {
    const identity = await this.findByAddress(address);
    if (!identity) throw new TesseraError('not_found', `No identity with address ${address}.`);
    return identity;
  }

  list(filter: { status?: IdentityStatus; role?: IdentityRole } = {}): Promise<Identity[]> {
    return this.store.repos.identities.list(filter);
  }

  async issueTicket(address: string, ttlMs: number | undefined, actor: string): Promise<IssuedTicket> {
    const ttl = ttlMs ?? this.tickets.defaultTtlMs;
    if (ttl <= 0 || ttl > this.tickets.maxTtlMs) {
      throw new TesseraError('invalid_request', `Ticket TTL must be between 1 s and ${this.tickets.maxTtlMs / 1000} s.`);
    }
    const identity = await this.getByAddress(address);
    if (identity.status === 'revoked') throw new TesseraError('identity_revoked', `Identity ${address} is revoked; it cannot be enrolled again.`);
    const ticket = TICKET_PREFIX + randomToken(TICKET_BYTES);
    const ticketHash = sha256Base64url(ticket);
    const now = this.clock.now();
    const expiresAt = now + ttl;
    await this.store.transaction(async (repos) => {
      await repos.tickets.insert({ ticketHash, identityId: identity.id, issuedAt: now, issuedBy: actor, expiresAt });
      await this.audit.append(
        { actor, action: 'ticket.issued', outcome: 'success', identityId: identity.id, details: { ticket_sha256: ticketHash, expires_at: expiresAt } },
        repos,
      );
    });
    return { identityId: identity.id, ticket, expiresAt };
  }

  /**
   * Redeems a ticket for the identity that proved possession of its key. The conditional UPDATE is
   * the single-use guarantee: of two racing redemptions exactly one sees a row change. An identity
   * that keeps presenting bad tickets is refused (`rate_limited`) until its failure window ends.
   */
  async redeemTicket(identity: Identity, ticket: string): Promise<Identity> {
    const ticketHash = sha256Base64url(ticket);
    const now = this.clock.now();
    try {
      const retryAfterSeconds = this.#failedRedemptions.retryAfterSeconds(identity.id);
      if (retryAfterSeconds !== undefined) {
        throw new TesseraError('rate_limited', `Too many failed ticket redemptions by this identity; retry in ${retryAfterSeconds} s.`, { retryAfterSeconds });
      }
      return await this.store.transaction(async (repos) => {
        if (!(await repos.tickets.redeem(ticketHash, identity.id, now))) throw await this.whyTicketFailed(repos, ticketHash, identity.id, now);
        const activated = await repos.identities.activate(identity.id, now);
        if (!activated) throw new TesseraError('identity_revoked');
        await this.audit.append(
          { actor: identity.id, action: 'ticket.redeemed', outcome: 'success', identityId: identity.id, details: { ticket_sha256: ticketHash } },
          repos,
        );
        await this.audit.append({ actor: identity.id, action: 'identity.enrolled', outcome: 'success', identityId: identity.id }, repos);
        return activated;
      });
    } catch (error) {
      if (error instanceof TesseraError) {
        if (error.code !== 'rate_limited') this.#failedRedemptions.fail(identity.id);
        await this.audit.append({
          actor: identity.id,
          action: 'ticket.rejected',
          outcome: 'denied',
          identityId: identity.id,
          reason: error.code,
          details: { ticket_sha256: ticketHash },
        });
      }
      throw error;
    }
  }

  private async whyTicketFailed(repos: Repositories, ticketHash: string, identityId: string, now: number): Promise<TesseraError> {
    const ticket = await repos.tickets.find(ticketHash);
    if (!ticket || ticket.identityId !== identityId) return new TesseraError('ticket_invalid');
    if (ticket.redeemedAt !== null) return new TesseraError('ticket_used');
    if (ticket.expiresAt <= now) return new TesseraError('ticket_expired');
    return new TesseraError('ticket_invalid');
  }

  async revoke(address: string, reason: string, actor: string): Promise<Identity> {
    return this.store.transaction(async (repos) => {
      const now = this.clock.now();
      const admins = await repos.identities.activeAdminAddresses();
      if (admins.length === 1 && admins[0] === address) {
        // Nothing could provision or revoke anything any more, and no command brings an admin back.
        throw new TesseraError('conflict', `${address} is the last active admin; provision another admin before revoking it.`);
      }
      const revoked = await repos.identities.revoke(address, { at: now, by: actor, reason });
      // Its sessions end with it, on every replica (the change feed drops them from their caches).
      if (revoked) await repos.sessions.endAll(revoked.id, now);
      if (!revoked) {
        const existing = await repos.identities.findByAddress(address);
        throw existing
          ? new TesseraError('conflict', `Identity ${address} is already revoked.`)
          : new TesseraError('not_found', `No identity with address ${address}.`);
      }
      await this.audit.append({ actor, action: 'identity.revoked', outcome: 'success', identityId: revoked.id, reason, details: { address } }, repos);
      return revoked;
    });
  }

  /**
   * Lifts a clone suspension (docs/PROTOCOL.md §3.1) once an admin has made sure only one copy of the
   * agent runs. Its old sessions stay ended; the agent registers a new one with a higher generation.
   */
  async reinstate(address: string, reason: string, actor: string): Promise<Identity> {
    return this.store.transaction(async (repos) => {
      const reinstated = await repos.identities.reinstate(address);
      if (!reinstated) {
        const existing = await repos.identities.findByAddress(address);
        throw existing
          ? new TesseraError('conflict', `Identity ${address} is ${existing.status}, not suspended.`)
          : new TesseraError('not_found', `No identity with address ${address}.`);
      }
      await this.audit.append({ actor, action: 'identity.reinstated', outcome: 'success', identityId: reinstated.id, reason, details: { address } }, repos);
      return reinstated;
    });
  }
}

/** The key's thumbprint, after checking it is a key proofs can safely be verified against. */
async function checkedKeyId(publicKey: Uint8Array): Promise<string> {
  if (publicKey.length !== 32) throw new TesseraError('invalid_request', 'public_key must be a raw 32-byte Ed25519 key.');
  // A small-order key is a universal forgery target for cofactorless verifiers; a non-canonical one has twins.
  if (!isStrictEd25519PublicKey(publicKey)) {
    throw new TesseraError('invalid_request', 'public_key must be the canonical encoding of an Ed25519 point that is not of small order.');
  }
  return keyThumbprint(publicKey);
}
