import type { Kysely } from 'kysely';
import type { AuditSink } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { isStrictEd25519PublicKey } from '../crypto/ed25519.js';
import { base64url, randomToken, sha256Base64url } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import { FailureLimit, type FailureLimitSettings } from '../limits/failure-limit.js';
import { SqlSessionRepository } from '../store/repositories/sessions.js';
import type { Database } from '../store/schema.js';
import { identityFromRow, type Identity, type IdentityRole, type IdentityStatus } from './identity.js';

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
    if (input.publicKey.length !== 32) throw new TesseraError('invalid_request', 'public_key must be a raw 32-byte Ed25519 key.');
    // A small-order key is a universal forgery target for cofactorless verifiers; a non-canonical one has twins.
    if (!isStrictEd25519PublicKey(input.publicKey)) {
      throw new TesseraError('invalid_request', 'public_key must be the canonical encoding of an Ed25519 point that is not of small order.');
    }
    const id = await keyThumbprint(input.publicKey);
    return this.db.transaction().execute(async (trx) => {
      const clash = await trx
        .selectFrom('identities')
        .select(['address', 'id'])
        .where((eb) => eb.or([eb('address', '=', input.address), eb('id', '=', id)]))
        .executeTakeFirst();
      if (clash) {
        const what = clash.address === input.address ? `address ${input.address} is already provisioned` : 'this public key is already registered';
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
      await this.audit.append(
        { actor, action: 'identity.registered', outcome: 'success', identityId: id, details: { address: input.address, role: row.role, key_uri: input.keyUri } },
        trx,
      );
      return identityFromRow(row);
    });
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
      // Its sessions end with it, on every replica (the change feed drops them from their caches).
      if (revoked) await new SqlSessionRepository(trx).endAll(revoked.id, now);
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

  /**
   * Lifts a clone suspension (docs/PROTOCOL.md §3.1) once an admin has made sure only one copy of the
   * agent runs. Its old sessions stay ended; the agent registers a new one with a higher generation.
   */
  async reinstate(address: string, reason: string, actor: string): Promise<Identity> {
    return this.db.transaction().execute(async (trx) => {
      const reinstated = await trx
        .updateTable('identities')
        .set({ status: 'active' })
        .where('address', '=', address)
        .where('status', '=', 'suspended')
        .returningAll()
        .executeTakeFirst();
      if (!reinstated) {
        const existing = await trx.selectFrom('identities').select('status').where('address', '=', address).executeTakeFirst();
        throw existing
          ? new TesseraError('conflict', `Identity ${address} is ${existing.status}, not suspended.`)
          : new TesseraError('not_found', `No identity with address ${address}.`);
      }
      await this.audit.append({ actor, action: 'identity.reinstated', outcome: 'success', identityId: reinstated.id, reason, details: { address } }, trx);
      return identityFromRow(reinstated);
    });
  }
}
