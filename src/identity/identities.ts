import type { Kysely } from 'kysely';
import type { AuditSink } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { isStrictEd25519PublicKey } from '../crypto/ed25519.js';
import { base64url, randomToken, sha256Base64url } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import { FailureLimit, type FailureLimitSettings } from '../limits/failure-limit.js';
import { keyStoreKindOf } from '../keys/registry.js';
import { type IdentityKeyRepository, SqlIdentityKeyRepository } from '../store/repositories/identity-keys.js';
import type { Database } from '../store/schema.js';
import { identityFromRow, type Identity, type IdentityKey, type IdentityRole, type IdentityStatus } from './identity.js';

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
    private readonly db: Kysely<Database>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly tickets: TicketPolicy,
  ) {
    this.#failedRedemptions = new FailureLimit(clock, tickets.failures);
  }

  async register(input: RegisterIdentity, actor: string | null): Promise<Identity> {
    const id = await checkedKeyId(input.publicKey);
    return this.db.transaction().execute(async (trx) => {
      const clash = await trx
        .selectFrom('identities')
        .select(['address', 'id'])
        .where((eb) => eb.or([eb('address', '=', input.address), eb('id', '=', id)]))
        .executeTakeFirst();
      if (clash || (await new SqlIdentityKeyRepository(trx).identityOf(id))) {
        const what = clash?.address === input.address ? `address ${input.address} is already provisioned` : 'this public key is already registered';
        throw new TesseraError('conflict', `Identity conflict: ${what}.`);
      }
      const row = {
        id,
        address: input.address,
        role: input.role ?? 'agent',
        status: input.status ?? 'pending',
        public_key: base64url.encode(input.publicKey),
        key_uri: input.keyUri,
        attributes: JSON.stringify(input.attributes ?? {}),
        created_at: this.clock.now(),
        created_by: actor,
        enrolled_at: input.status === 'active' ? this.clock.now() : null,
        revoked_at: null,
        revoked_by: null,
        revocation_reason: null,
      } as const;
      await trx.insertInto('identities').values(row).execute();
      await new SqlIdentityKeyRepository(trx).add({ keyId: id, identityId: id, publicKey: input.publicKey, keyUri: input.keyUri, createdAt: row.created_at, notAfter: null, retiredAt: null });
      await this.audit.append(
        { actor, action: 'identity.registered', outcome: 'success', identityId: id, details: { address: input.address, role: row.role, key_uri: input.keyUri } },
        trx,
      );
      return identityFromRow(row);
    });
  }

  /** Every key the identity has had, oldest first. */
  keysOf(identityId: string, db: Kysely<Database> = this.db): Promise<IdentityKey[]> {
    return this.keys(db).forIdentity(identityId);
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
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('identities').selectAll().where('address', '=', address).executeTakeFirst();
      if (!row) throw new TesseraError('not_found', `No identity with address ${address}.`);
      const identity = identityFromRow(row);
      if (identity.status === 'revoked') throw new TesseraError('identity_revoked', `Identity ${address} is revoked; its key cannot be rotated.`);
      if (keyStoreKindOf(key.keyUri) !== keyStoreKindOf(identity.keyUri)) {
        throw new TesseraError('invalid_request', `The new key must be in the same key store as the current one (${keyStoreKindOf(identity.keyUri)}).`);
      }
      const keys = this.keys(trx);
      if ((await keys.identityOf(keyId)) !== undefined || (await trx.selectFrom('identities').select('id').where('id', '=', keyId).executeTakeFirst())) {
        throw new TesseraError('conflict', 'Identity conflict: this public key is already registered.');
      }
      const now = this.clock.now();
      const previous = (await keys.forIdentity(identity.id)).find((k) => k.notAfter === null);
      if (!previous) throw new TesseraError('internal', `Identity ${address} has no current key.`);
      const notAfter = now + graceMs;
      await keys.supersede(identity.id, notAfter);
      const added: IdentityKey = { keyId, identityId: identity.id, publicKey: key.publicKey, keyUri: key.keyUri, createdAt: now, notAfter: null, retiredAt: null };
      await keys.add(added);
      // The identity row carries the current key; updating it also tells every replica (change feed).
      const updated = await trx
        .updateTable('identities')
        .set({ public_key: base64url.encode(key.publicKey), key_uri: key.keyUri })
        .where('id', '=', identity.id)
        .returningAll()
        .executeTakeFirstOrThrow();
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
        trx,
      );
      return { identity: identityFromRow(updated), key: added, previous: { ...previous, notAfter } };
    });
  }

  /**
   * Records, once per key, that a superseded key's grace has ended (`identity.key_retired`). Proofs
   * by such a key are refused from its notAfter on whether or not this has run; run by the prune job.
   */
  async retireExpiredKeys(): Promise<IdentityKey[]> {
    const now = this.clock.now();
    const retired: IdentityKey[] = [];
    for (const key of await this.keys(this.db).retirable(now)) {
      await this.db.transaction().execute(async (trx) => {
        if (!(await this.keys(trx).markRetired(key.keyId, now))) return;
        await this.audit.append(
          { actor: null, action: 'identity.key_retired', outcome: 'success', identityId: key.identityId, details: { key_id: key.keyId, key_uri: key.keyUri, not_after: key.notAfter } },
          trx,
        );
        retired.push({ ...key, retiredAt: now });
      });
    }
    return retired;
  }

  private keys(db: Kysely<Database>): IdentityKeyRepository {
    return new SqlIdentityKeyRepository(db);
  }

  async findByAddress(address: string): Promise<Identity | undefined> {
    const row = await this.db.selectFrom('identities').selectAll().where('address', '=', address).executeTakeFirst();
    return row && identityFromRow(row);
  }

  async getByAddress(address: string): Promise<Identity> {
    const identity = await this.findByAddress(address);
    if (!identity) throw new TesseraError('not_found', `No identity with address ${address}.`);
    return identity;
  }

  async list(filter: { status?: IdentityStatus; role?: IdentityRole } = {}): Promise<Identity[]> {
    let query = this.db.selectFrom('identities').selectAll().orderBy('created_at').orderBy('address');
    if (filter.status) query = query.where('status', '=', filter.status);
    if (filter.role) query = query.where('role', '=', filter.role);
    return (await query.execute()).map(identityFromRow);
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
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('enrollment_tickets')
        .values({ ticket_hash: ticketHash, identity_id: identity.id, issued_at: now, issued_by: actor, expires_at: expiresAt, redeemed_at: null })
        .execute();
      await this.audit.append(
        { actor, action: 'ticket.issued', outcome: 'success', identityId: identity.id, details: { ticket_sha256: ticketHash, expires_at: expiresAt } },
        trx,
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
      return await this.db.transaction().execute(async (trx) => {
        const claimed = await trx
          .updateTable('enrollment_tickets')
          .set({ redeemed_at: now })
          .where('ticket_hash', '=', ticketHash)
          .where('identity_id', '=', identity.id)
          .where('redeemed_at', 'is', null)
          .where('expires_at', '>', now)
          .executeTakeFirst();
        if (claimed.numUpdatedRows !== 1n) throw await this.whyTicketFailed(trx, ticketHash, identity.id, now);
        const activated = await trx
          .updateTable('identities')
          .set({ status: 'active', enrolled_at: now })
          .where('id', '=', identity.id)
          .where('status', '!=', 'revoked')
          .returningAll()
          .executeTakeFirst();
        if (!activated) throw new TesseraError('identity_revoked');
        await this.audit.append(
          { actor: identity.id, action: 'ticket.redeemed', outcome: 'success', identityId: identity.id, details: { ticket_sha256: ticketHash } },
          trx,
        );
        await this.audit.append({ actor: identity.id, action: 'identity.enrolled', outcome: 'success', identityId: identity.id }, trx);
        return identityFromRow(activated);
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

  private async whyTicketFailed(trx: Kysely<Database>, ticketHash: string, identityId: string, now: number): Promise<TesseraError> {
    const row = await trx.selectFrom('enrollment_tickets').selectAll().where('ticket_hash', '=', ticketHash).executeTakeFirst();
    if (!row || row.identity_id !== identityId) return new TesseraError('ticket_invalid');
    if (row.redeemed_at !== null) return new TesseraError('ticket_used');
    if (row.expires_at <= now) return new TesseraError('ticket_expired');
    return new TesseraError('ticket_invalid');
  }

  async revoke(address: string, reason: string, actor: string): Promise<Identity> {
    return this.db.transaction().execute(async (trx) => {
      const now = this.clock.now();
      const admins = await trx.selectFrom('identities').select('address').where('role', '=', 'admin').where('status', '=', 'active').execute();
      if (admins.length === 1 && admins[0]!.address === address) {
        // Nothing could provision or revoke anything any more, and no command brings an admin back.
        throw new TesseraError('conflict', `${address} is the last active admin; provision another admin before revoking it.`);
      }
      const revoked = await trx
        .updateTable('identities')
        .set({ status: 'revoked', revoked_at: now, revoked_by: actor, revocation_reason: reason })
        .where('address', '=', address)
        .where('status', '!=', 'revoked')
        .returningAll()
        .executeTakeFirst();
      if (!revoked) {
        const existing = await trx.selectFrom('identities').select('status').where('address', '=', address).executeTakeFirst();
        throw existing
          ? new TesseraError('conflict', `Identity ${address} is already revoked.`)
          : new TesseraError('not_found', `No identity with address ${address}.`);
      }
      await this.audit.append({ actor, action: 'identity.revoked', outcome: 'success', identityId: revoked.id, reason, details: { address } }, trx);
      return identityFromRow(revoked);
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
