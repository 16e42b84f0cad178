import type { Kysely } from 'kysely';
import type { AuditSink } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import { precompiled } from '../store/precompiled.js';
import type { Database, LeaseState } from '../store/schema.js';
import type { BackendService } from './backend-service.js';
import type { GrantService } from './grant-service.js';
import { isRenewable, leaseRoleRefusal, type LeaseRow, leaseView, revocationHandleOf } from './lease.js';
import type { LeaseRevoker, RevocationCause, RevocationCounts } from './revoker.js';
import { upstreamError } from './upstream-error.js';
import { repositoriesOn } from '../store/repositories/index.js';

export type LeaseView = ReturnType<typeof leaseView>;

type PendingScope = { readonly leaseId?: string; readonly identityId?: string; readonly backend?: string };

/** Every view, renewal and release of one lease starts with this lookup: compiled once. */
const leaseById = precompiled<LeaseRow>((db, leaseId: string) => db.selectFrom('leases').selectAll().where('id', '=', leaseId), ['lease']);

/** At most this many pending leases are listed with their reason; `pending` counts them all. */
const REPORTED_FAILURES = 100;

/** The outcome of a bulk revocation: what is left revocation-pending, and why (never a secret). */
export interface RevocationReport extends RevocationCounts {
  readonly failures: { readonly lease_id: string; readonly backend: string; readonly error: string }[];
}

export interface LeaseFilter {
  readonly address?: string;
  readonly backend?: string;
  readonly state?: LeaseState;
}

/** Everything after issue: reading, renewing and revoking leases. */
export class LeaseService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly backends: BackendService,
    private readonly grants: GrantService,
    private readonly revoker: LeaseRevoker,
  ) {}

  async list(filter: LeaseFilter = {}, limit = 1000): Promise<LeaseView[]> {
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
    return (await query.execute()).map(({ address, ...row }) => leaseView(row, address));
  }

  /** The owner and admins see a lease; to anyone else it does not exist. */
  async view(caller: Identity, leaseId: string): Promise<LeaseView> {
    const row = await this.visible(caller, leaseId, caller.role === 'admin');
    return leaseView(row, await this.addressOf(row.identity_id));
  }

  /** New expiry = min(now + ttl, the grant's max TTL from issue); the upstream expiry moves first. */
  async renew(caller: Identity, leaseId: string, ttlMs: number | undefined): Promise<LeaseRow> {
    const row = await this.visible(caller, leaseId, false);
    const deny = async (error: TesseraError) => {
      await this.audit.append({
        actor: caller.id,
        action: 'lease.denied',
        outcome: 'denied',
        identityId: caller.id,
        reason: error.code,
        details: { operation: 'renew', lease_id: row.id, backend: row.backend, role: row.role },
      });
      return error;
    };
    // Also a lease issued before its owner's role was checked at issue.
    const refusal = leaseRoleRefusal(caller);
    if (refusal) throw await deny(refusal);
    const now = this.clock.now();
    if (row.state !== 'active' || row.expires_at <= now) throw await deny(new TesseraError('lease_inactive', `Lease ${leaseId} is ${row.state === 'active' ? 'expired' : row.state}.`));
    // Renewal needs the grant still in force: revoking a grant stops renewals, not running leases.
    const grant = await this.grants.findById(row.grant_id);
    if (!grant) throw await deny(new TesseraError('no_grant', 'The grant this lease was issued under has been revoked.'));
    const expiresAt = Math.min(now + (ttlMs ?? grant.default_ttl_ms), row.max_expires_at);

    try {
      await (await this.backends.instance(row.backend)).renew(revocationHandleOf(row), new Date(expiresAt));
    } catch (error) {
      throw await deny(upstreamError(error));
    }
    const renewed = { ...row, expires_at: expiresAt };
    await this.db.transaction().execute(async (trx) => {
      const result = await trx.updateTable('leases').set({ expires_at: expiresAt }).where('id', '=', row.id).where('state', '=', 'active').executeTakeFirst();
      if (result.numUpdatedRows !== 1n) throw new TesseraError('lease_inactive', `Lease ${leaseId} was revoked meanwhile.`);
      await this.audit.append(
        {
          actor: caller.id,
          action: 'lease.renewed',
          outcome: 'success',
          identityId: row.identity_id,
          details: { lease_id: row.id, backend: row.backend, role: row.role, expires_at: expiresAt, renewable: isRenewable(renewed) },
        },
        repositoriesOn(trx),
      );
    });
    return renewed;
  }

  /** The owner releases, or an admin revokes, one lease; revoking a finished lease changes nothing. */
  async revoke(caller: Identity, leaseId: string): Promise<LeaseRow> {
    const row = await this.visible(caller, leaseId, caller.role === 'admin');
    const reason = row.identity_id === caller.id ? 'released by owner' : 'revoked by admin';
    await this.revoker.revoke(await this.revoker.claim({ kind: 'live', leaseId }, { actor: caller.id, reason }));
    return this.visible(caller, leaseId, true);
  }

  /**
   * Revokes every live lease of an identity and/or backend. `pending` counts the leases left
   * revocation-pending (upstream failed, or another broker is revoking them): the reaper retries.
   */
  async revokeWhere(scope: { identityId?: string; backend?: string }, cause: RevocationCause): Promise<RevocationReport> {
    const { revoked } = await this.revoker.drain({ kind: 'live', ...scope }, cause);
    return this.report(revoked, scope);
  }

  /** Retries revocation-pending leases now, ignoring their backoff (`tessera leases retry`). */
  async retry(scope: { leaseId?: string; backend?: string }): Promise<RevocationReport> {
    const { revoked } = await this.revoker.drain({ kind: 'pending', ...scope });
    return this.report(revoked, scope);
  }

  /** Leases whose credential may still exist upstream after a failed revocation (`/healthz`). */
  async pendingRevocations(): Promise<number> {
    return Number((await this.pendingIn({}).select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()).count);
  }

  /** What is still revocation-pending in `scope` after a revocation, and why (the first few). */
  private async report(revoked: number, scope: PendingScope): Promise<RevocationReport> {
    const [count, failures] = await Promise.all([
      this.pendingIn(scope).select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow(),
      this.pendingIn(scope).select(['id', 'backend', 'last_error']).orderBy('id').limit(REPORTED_FAILURES).execute(),
    ]);
    return {
      revoked,
      pending: Number(count.count),
      failures: failures.map((row) => ({ lease_id: row.id, backend: row.backend, error: row.last_error ?? 'revocation in progress' })),
    };
  }

  private pendingIn(scope: PendingScope) {
    let query = this.db.selectFrom('leases').where('state', '=', 'revocation-pending');
    if (scope.leaseId !== undefined) query = query.where('id', '=', scope.leaseId);
    if (scope.identityId !== undefined) query = query.where('identity_id', '=', scope.identityId);
    if (scope.backend !== undefined) query = query.where('backend', '=', scope.backend);
    return query;
  }

  private async visible(caller: Identity, leaseId: string, asAdmin: boolean): Promise<LeaseRow> {
    const [row] = (await leaseById(this.db, [leaseId])).rows;
    if (!row || (row.identity_id !== caller.id && !asAdmin)) throw new TesseraError('not_found', `No lease ${leaseId}.`);
    return row;
  }

  private async addressOf(identityId: string): Promise<string | null> {
    const row = await this.db.selectFrom('identities').select('address').where('id', '=', identityId).executeTakeFirst();
    return row?.address ?? null;
  }
}
