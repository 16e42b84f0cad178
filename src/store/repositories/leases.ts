import { type ExpressionBuilder, type Kysely, type Selectable, sql } from 'kysely';
import type { AuditEvent, AuditSink } from '../../audit/audit-log.js';
import type { IdentityRole, IdentityStatus } from '../../identity/identity.js';
import { auditedUpdates } from '../audited-update.js';
import { precompiled } from '../precompiled.js';
import type { Database, LeaseState, LeaseTable } from '../schema.js';
import { sqliteIfIdle } from '../sync-sqlite.js';

/** A lease as stored: the record of one upstream credential, from intent to revocation. */
export interface LeaseRow {
  readonly id: string;
  readonly identity_id: string;
  readonly backend: string;
  readonly role: string;
  readonly grant_id: string;
  readonly state: LeaseState;
  /** JSON RevocationHandle from the backend's plan(): what revoke() needs, never a secret. */
  readonly revocation: string;
  readonly issued_at: number;
  readonly expires_at: number;
  readonly max_expires_at: number;
  readonly revoked_at: number | null;
  readonly revoked_by: string | null;
  readonly revocation_reason: string | null;
  readonly attempts: number;
  /** When the next revocation attempt is due; also how long a claimed revocation is reserved. */
  readonly next_attempt_at: number | null;
  readonly last_error: string | null;
  /** Proxied leases: SHA-256 (base64url) of the lease token; the token itself is never stored. */
  readonly token_hash: string | null;
  /** The grant's constraints when the lease was issued (JSON object): a lease keeps its scope. */
  readonly constraints: string;
  /** The delegation the lease was issued under (src/delegations/); null for a lease under the caller's own grant. */
  readonly delegation_id: string | null;
  /** JSON RFC 8693 `act` chain {sub, act: {...}} of a delegated lease (docs/PROTOCOL.md §12); null otherwise. */
  readonly act: string | null;
}

/** A proxied lease with its identity's standing: what the credential proxy checks on every call. */
export interface ProxiedLease {
  readonly id: string;
  readonly identity_id: string;
  readonly backend: string;
  readonly role: string;
  readonly constraints: string;
  /** JSON RFC 8693 `act` chain of a delegated lease, else null */
  readonly act: string | null;
  readonly state: LeaseState;
  readonly expires_at: number;
  readonly identity_status: IdentityStatus;
  readonly identity_role: IdentityRole;
}

/** Which leases a claim takes. Every scope only takes rows nobody is revoking right now. */
export type ClaimScope =
  | { readonly kind: 'expired' }
  | { readonly kind: 'retry' }
  | { readonly kind: 'stale-pending'; readonly issuedBefore: number }
  | { readonly kind: 'live'; readonly leaseId?: string; readonly identityId?: string; readonly backend?: string; readonly delegationIds?: readonly string[] }
  /** An admin's "retry now": revocation-pending leases whatever their backoff says. */
  | { readonly kind: 'pending'; readonly leaseId?: string; readonly backend?: string };

export interface Claim {
  readonly scope: ClaimScope;
  readonly now: number;
  /** The claimed rows are reserved for the claiming broker until then (next_attempt_at). */
  readonly reservedUntil: number;
  readonly limit: number;
  /** Kept where the lease already has one (who asked and why). */
  readonly cause?: { readonly actor: string | null; readonly reason: string };
}

/** A change of one lease and the event that records it, written together (see activate(), finishRevocations()). */
export interface AuditedLeaseChange<P> {
  readonly change: P;
  readonly event: AuditEvent;
}

export type PendingScope = { readonly leaseId?: string; readonly identityId?: string; readonly backend?: string };

export interface LeaseFilter {
  readonly address?: string;
  readonly backend?: string;
  readonly state?: LeaseState;
}

/** Leases: the record of every upstream credential, from intent to revocation. */
export interface LeaseRepository {
  /**
   * The lease behind a proxy token, by the token's sha256Base64url (as leases.token_hash stores
   * it): one indexed lookup per proxied request, precompiled, on Store.reader outside a transaction.
   */
  findByTokenHash(tokenHash: string): Promise<ProxiedLease | undefined>;
  /** Precompiled: every view, renewal and release of a lease starts here. */
  findById(id: string): Promise<LeaseRow | undefined>;
  /** With the holder's address; by issue time, then id. */
  list(filter: LeaseFilter, limit: number): Promise<(LeaseRow & { address: string | null })[]>;
  /** Records one intent (a pending lease). */
  insertIntent(intent: LeaseRow): Promise<void>;
  /** Records several intents in one transaction, all or nothing (synchronously on an idle SQLite writer). */
  insertIntents(intents: readonly LeaseRow[]): Promise<void>;
  /**
   * Activates each lease that is still pending and whose identity is still active, appending its
   * event to `audit` in the same transaction; one transaction for all. Whether each was activated.
   */
  activate(changes: readonly AuditedLeaseChange<{ leaseId: string; identityId: string }>[], audit: AuditSink): Promise<boolean[]>;
  /** Moves the expiry of a lease that is still active; whether it was. */
  renew(id: string, expiresAt: number): Promise<boolean>;
  /**
   * Claims at most `limit` leases in the scope for revocation (revocation-pending, reserved): a
   * conditional UPDATE re-checking the scope, so two brokers never take the same lease; on
   * PostgreSQL FOR UPDATE SKIP LOCKED, so brokers claiming at once take disjoint batches instead
   * of queueing on each other's rows. The claimed rows, as updated.
   */
  claim(claim: Claim): Promise<LeaseRow[]>;
  /** Takes one lease over for revocation whatever its state (a failed issue); the row, if any. */
  takeOver(id: string, reason: string, reservedUntil: number): Promise<LeaseRow[]>;
  /**
   * Marks each lease that is still revocation-pending revoked or expired, appending its event in
   * the same transaction; one transaction for all. Whether each was finished here (not elsewhere first).
   */
  finishRevocations(changes: readonly AuditedLeaseChange<{ leaseId: string; state: Extract<LeaseState, 'expired' | 'revoked'>; at: number }>[], audit: AuditSink): Promise<boolean[]>;
  /** Counts a failed attempt of a lease that is still revocation-pending and schedules the next. */
  recordRevocationFailure(id: string, failure: { nextAttemptAt: number; error: string }): Promise<void>;
  /** How many leases in the scope are revocation-pending. */
  countPendingRevocations(scope: PendingScope): Promise<number>;
  /** The first `limit` of them by id, with their last error. */
  pendingRevocations(scope: PendingScope, limit: number): Promise<{ id: string; backend: string; last_error: string | null }[]>;
}

const LEASE_COLUMNS = [
  'id', 'identity_id', 'backend', 'role', 'grant_id', 'state', 'revocation', 'issued_at', 'expires_at', 'max_expires_at', 'revoked_at',
  'revoked_by', 'revocation_reason', 'attempts', 'next_attempt_at', 'last_error', 'token_hash', 'constraints', 'delegation_id', 'act',
] as const satisfies readonly (keyof LeaseRow)[];

// The hot-path queries of issuance, proxying and revocation, compiled once (see precompiled.ts).
const insertIntent = precompiled((db, ...values: unknown[]) => db.insertInto('leases').values(Object.fromEntries(LEASE_COLUMNS.map((column, i) => [column, values[i]])) as Selectable<LeaseTable>), LEASE_COLUMNS);
const intentValues = (intent: LeaseRow) => LEASE_COLUMNS.map((column) => intent[column]);

const activateIntent = precompiled(
  (db, leaseId: string, identityId: string) =>
    db
      .updateTable('leases')
      .set({ state: sql.lit('active') })
      .where('id', '=', leaseId)
      .where('state', '=', sql.lit('pending'))
      .where((eb) => eb.exists(eb.selectFrom('identities').select('identities.id').where('identities.id', '=', identityId).where('identities.status', '=', sql.lit('active')))),
  ['lease', 'identity'],
);

const finishRevocation = precompiled(
  (db, state: LeaseState, now: number, leaseId: string) =>
    db
      .updateTable('leases')
      .set({ state, revoked_at: now, next_attempt_at: sql.lit(null), last_error: sql.lit(null) })
      .where('id', '=', leaseId)
      .where('state', '=', sql.lit('revocation-pending')),
  ['state', 'now', 'lease'],
);

const leaseById = precompiled<LeaseRow>((db, leaseId: string) => db.selectFrom('leases').selectAll().where('id', '=', leaseId), ['lease']);

const leaseByTokenHash = precompiled<ProxiedLease>(
  (db, tokenHash: string) =>
    db
      .selectFrom('leases')
      .innerJoin('identities', 'identities.id', 'leases.identity_id')
      .select(['leases.id', 'leases.identity_id', 'leases.backend', 'leases.role', 'leases.constraints', 'leases.act', 'leases.state', 'leases.expires_at', 'identities.status as identity_status', 'identities.role as identity_role'])
      .where('leases.token_hash', '=', tokenHash),
  ['token hash'],
);

function scopeFilter(scope: ClaimScope, now: number) {
  return (eb: ExpressionBuilder<Database, 'leases'>) => {
    switch (scope.kind) {
      case 'expired':
        return eb.and([eb('state', '=', 'active'), eb('expires_at', '<=', now)]);
      case 'retry':
        return eb.and([eb('state', '=', 'revocation-pending'), eb('next_attempt_at', '<=', now)]);
      case 'stale-pending':
        return eb.and([eb('state', '=', 'pending'), eb('issued_at', '<', scope.issuedBefore)]);
      case 'live': {
        const conditions = [
          eb.or([eb('state', 'in', ['pending', 'active']), eb.and([eb('state', '=', 'revocation-pending'), eb('next_attempt_at', '<=', now)])]),
        ];
        if (scope.leaseId !== undefined) conditions.push(eb('id', '=', scope.leaseId));
        if (scope.identityId !== undefined) conditions.push(eb('identity_id', '=', scope.identityId));
        if (scope.backend !== undefined) conditions.push(eb('backend', '=', scope.backend));
        if (scope.delegationIds !== undefined) conditions.push(eb('delegation_id', 'in', [...scope.delegationIds]));
        return eb.and(conditions);
      }
      case 'pending': {
        // A lease another sweep is revoking at this moment may be taken too: revoke() is idempotent
        // and a finish is audited only by the first broker to record it.
        const conditions = [eb('state', '=', 'revocation-pending')];
        if (scope.leaseId !== undefined) conditions.push(eb('id', '=', scope.leaseId));
        if (scope.backend !== undefined) conditions.push(eb('backend', '=', scope.backend));
        return eb.and(conditions);
      }
    }
  };
}

export class SqlLeaseRepository implements LeaseRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly reader: Kysely<Database>,
    private readonly dialect: 'sqlite' | 'postgres',
  ) {}

  async findByTokenHash(tokenHash: string): Promise<ProxiedLease | undefined> {
    return (await leaseByTokenHash(this.reader, [tokenHash])).rows[0];
  }

  async findById(id: string): Promise<LeaseRow | undefined> {
    return (await leaseById(this.db, [id])).rows[0];
  }

  async list(filter: LeaseFilter, limit: number): Promise<(LeaseRow & { address: string | null })[]> {
    let query = this.db
      .selectFrom('leases')
      .leftJoin('identities', 'identities.id', 'leases.identity_id')
      .selectAll('leases')
      .select('identities.address')
      .orderBy('leases.issued_at')
      .orderBy('leases.id')
      .limit(limit);
    if (filter.address) query = query.where('identities.address', '=', filter.address);
    if (filter.backend) query = query.where('leases.backend', '=', filter.backend);
    if (filter.state) query = query.where('leases.state', '=', filter.state);
    return query.execute();
  }

  async insertIntent(intent: LeaseRow): Promise<void> {
    await insertIntent(this.db, intentValues(intent));
  }

  async insertIntents(intents: readonly LeaseRow[]): Promise<void> {
    const sqlite = sqliteIfIdle(this.db);
    if (sqlite) {
      const statement = sqlite.prepare(insertIntent.sql(this.db));
      return sqlite.transaction(() => {
        for (const intent of intents) statement.run(intentValues(intent));
      });
    }
    await this.db.transaction().execute(async (trx) => {
      for (const intent of intents) await insertIntent(trx, intentValues(intent));
    });
  }

  activate(changes: readonly AuditedLeaseChange<{ leaseId: string; identityId: string }>[], audit: AuditSink): Promise<boolean[]> {
    return auditedUpdates(this.db, audit, activateIntent, changes.map(({ change, event }) => ({ parameters: [change.leaseId, change.identityId], event })));
  }

  async renew(id: string, expiresAt: number): Promise<boolean> {
    const result = await this.db.updateTable('leases').set({ expires_at: expiresAt }).where('id', '=', id).where('state', '=', 'active').executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  claim({ scope, now, reservedUntil, limit, cause }: Claim): Promise<LeaseRow[]> {
    const filter = scopeFilter(scope, now);
    const skipLocked = this.dialect === 'postgres';
    return this.db
      .updateTable('leases')
      .set({
        state: 'revocation-pending',
        next_attempt_at: reservedUntil,
        ...(cause && {
          revoked_by: sql<string | null>`coalesce(revoked_by, ${cause.actor})`,
          revocation_reason: sql<string | null>`coalesce(revocation_reason, ${cause.reason})`,
        }),
      })
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('leases')
          .select('id')
          .where(filter)
          .orderBy('expires_at')
          .limit(limit)
          .$if(skipLocked, (query) => query.forUpdate().skipLocked()),
      )
      .where(filter)
      .returningAll()
      .execute();
  }

  takeOver(id: string, reason: string, reservedUntil: number): Promise<LeaseRow[]> {
    return this.db
      .updateTable('leases')
      .set({ state: 'revocation-pending', next_attempt_at: reservedUntil, revocation_reason: sql<string | null>`coalesce(revocation_reason, ${reason})` })
      .where('id', '=', id)
      .returningAll()
      .execute();
  }

  finishRevocations(changes: readonly AuditedLeaseChange<{ leaseId: string; state: Extract<LeaseState, 'expired' | 'revoked'>; at: number }>[], audit: AuditSink): Promise<boolean[]> {
    return auditedUpdates(this.db, audit, finishRevocation, changes.map(({ change, event }) => ({ parameters: [change.state, change.at, change.leaseId], event })));
  }

  async recordRevocationFailure(id: string, { nextAttemptAt, error }: { nextAttemptAt: number; error: string }): Promise<void> {
    await this.db
      .updateTable('leases')
      .set({ attempts: sql<number>`attempts + 1`, next_attempt_at: nextAttemptAt, last_error: error })
      .where('id', '=', id)
      .where('state', '=', 'revocation-pending')
      .execute();
  }

  async countPendingRevocations(scope: PendingScope): Promise<number> {
    return Number((await this.#pendingIn(scope).select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()).count);
  }

  pendingRevocations(scope: PendingScope, limit: number): Promise<{ id: string; backend: string; last_error: string | null }[]> {
    return this.#pendingIn(scope).select(['id', 'backend', 'last_error']).orderBy('id').limit(limit).execute();
  }

  #pendingIn(scope: PendingScope) {
    let query = this.db.selectFrom('leases').where('state', '=', 'revocation-pending');
    if (scope.leaseId !== undefined) query = query.where('id', '=', scope.leaseId);
    if (scope.identityId !== undefined) query = query.where('identity_id', '=', scope.identityId);
    if (scope.backend !== undefined) query = query.where('backend', '=', scope.backend);
    return query;
  }
}
