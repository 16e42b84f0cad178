import type { AuditSink } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { DelegationService } from '../delegations/delegation-service.js';
import { TesseraError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { Store } from '../store/database.js';
import type { LeaseFilter, PendingScope } from '../store/repositories/leases.js';
import type { BackendService } from './backend-service.js';
import type { GrantService } from './grant-service.js';
import { isRenewable, leaseRoleRefusal, type LeaseRow, leaseView, revocationHandleOf } from './lease.js';
import type { LeaseRevoker, RevocationCause, RevocationCounts } from './revoker.js';
import { upstreamError } from './upstream-error.js';

export type LeaseView = ReturnType<typeof leaseView>;

export type { LeaseFilter };

/** At most this many pending leases are listed with their reason; `pending` counts them all. */
const REPORTED_FAILURES = 100;

/** The outcome of a bulk revocation: what is left revocation-pending, and why (never a secret). */
export interface RevocationReport extends RevocationCounts {
  readonly failures: { readonly lease_id: string; readonly backend: string; readonly error: string }[];
}

/** Everything after issue: reading, renewing and revoking leases. */
export class LeaseService {
  constructor(
    private readonly store: Pick<Store, 'repos' | 'transaction'>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly backends: BackendService,
    private readonly grants: GrantService,
    private readonly delegations: DelegationService,
    private readonly revoker: LeaseRevoker,
  ) {}

  async list(filter: LeaseFilter = {}, limit = 1000): Promise<LeaseView[]> {
    return (await this.store.repos.leases.list(filter, limit)).map(({ address, ...row }) => leaseView(row, address));
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
    // A delegated lease also needs its chain still in force (max_expires_at already ends with it).
    if (row.delegation_id !== null) await this.delegations.effectiveScope(row.delegation_id).catch(async (error: unknown) => {
      throw error instanceof TesseraError ? await deny(error) : error;
    });
    const expiresAt = Math.min(now + (ttlMs ?? grant.default_ttl_ms), row.max_expires_at);

    try {
      await (await this.backends.instance(row.backend)).renew(revocationHandleOf(row), new Date(expiresAt));
    } catch (error) {
      throw await deny(upstreamError(error));
    }
    const renewed = { ...row, expires_at: expiresAt };
    await this.store.transaction(async (repos) => {
      if (!(await repos.leases.renew(row.id, expiresAt))) throw new TesseraError('lease_inactive', `Lease ${leaseId} was revoked meanwhile.`);
      await this.audit.append(
        {
          actor: caller.id,
          action: 'lease.renewed',
          outcome: 'success',
          identityId: row.identity_id,
          details: { lease_id: row.id, backend: row.backend, role: row.role, expires_at: expiresAt, renewable: isRenewable(renewed) },
        },
        repos,
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
    return this.store.repos.leases.countPendingRevocations({});
  }

  /** What is still revocation-pending in `scope` after a revocation, and why (the first few). */
  private async report(revoked: number, scope: PendingScope): Promise<RevocationReport> {
    const [pending, failures] = await Promise.all([this.store.repos.leases.countPendingRevocations(scope), this.store.repos.leases.pendingRevocations(scope, REPORTED_FAILURES)]);
    return {
      revoked,
      pending,
      failures: failures.map((row) => ({ lease_id: row.id, backend: row.backend, error: row.last_error ?? 'revocation in progress' })),
    };
  }

  private async visible(caller: Identity, leaseId: string, asAdmin: boolean): Promise<LeaseRow> {
    const row = await this.store.repos.leases.findById(leaseId);
    if (!row || (row.identity_id !== caller.id && !asAdmin)) throw new TesseraError('not_found', `No lease ${leaseId}.`);
    return row;
  }

  private async addressOf(identityId: string): Promise<string | null> {
    return (await this.store.repos.identities.addresses([identityId])).get(identityId) ?? null;
  }
}
