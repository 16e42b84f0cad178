import type { AuditSink } from '../audit/audit-log.js';
import type { BackendContext } from '../backends/registry.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import type { Clock, Scheduler } from '../clock.js';
import type { IdentityCache } from '../identity/identity-cache.js';
import type { WrappingKeys } from '../secrets/wrapping-keys.js';
import { type DelegationSettings, DelegationService, DEFAULT_DELEGATION_SETTINGS } from '../delegations/delegation-service.js';
import type { Store } from '../store/database.js';
import { BackendService } from './backend-service.js';
import { GrantService } from './grant-service.js';
import { LeaseIssuer } from './issuer.js';
import { LeaseService } from './lease-service.js';
import { LeaseReaper } from './reaper.js';
import { reconcilePendingLeases, startupCutoff } from './reconcile.js';
import { LeaseRevoker, type RevocationCounts, type RevocationLog } from './revoker.js';

export interface LeaseSettings {
  /** How often the reaper looks for expired leases and due retries. */
  readonly reaperIntervalMs: number;
  /**
   * Age after which a pending lease on a shared store counts as orphaned (longer than any issue):
   * its broker died mid-issue, and any replica revokes it. TESSERA_LEASE_PENDING_GRACE.
   */
  readonly pendingGraceMs: number;
  readonly revocationConcurrencyPerBackend: number;
  readonly revocationBatchSize: number;
  readonly revocationClaimTimeoutMs: number;
}

export const DEFAULT_LEASE_SETTINGS: LeaseSettings = {
  reaperIntervalMs: 1_000,
  pendingGraceMs: 60_000,
  revocationConcurrencyPerBackend: 8,
  revocationBatchSize: 200,
  revocationClaimTimeoutMs: 120_000,
};

/** Backends, grants and leases, wired together; the broker starts and closes them as one. */
export class LeaseSystem {
  readonly backends: BackendService;
  readonly grants: GrantService;
  readonly delegations: DelegationService;
  readonly issuer: LeaseIssuer;
  readonly leases: LeaseService;
  readonly reaper: LeaseReaper;
  private readonly revoker: LeaseRevoker;

  constructor(
    private readonly store: Store,
    audit: AuditSink,
    private readonly clock: Clock,
    wrappingKeys: WrappingKeys,
    private readonly settings: LeaseSettings,
    backendContext: BackendContext,
    changes: ChangeFeed,
    identities: IdentityCache,
    log?: RevocationLog,
    delegationSettings: DelegationSettings = DEFAULT_DELEGATION_SETTINGS,
  ) {
    this.backends = new BackendService(store, audit, clock, wrappingKeys, backendContext, changes);
    this.grants = new GrantService(store, audit, clock, this.backends, changes);
    this.revoker = new LeaseRevoker(store, audit, clock, this.backends, {
      concurrencyPerBackend: settings.revocationConcurrencyPerBackend,
      claimTimeoutMs: settings.revocationClaimTimeoutMs,
      batchSize: settings.revocationBatchSize,
    }, log);
    this.delegations = new DelegationService(store, audit, clock, this.grants, this.backends, this.revoker, delegationSettings, identities);
    this.issuer = new LeaseIssuer(store, audit, clock, this.backends, this.delegations, this.revoker);
    this.leases = new LeaseService(store, audit, clock, this.backends, this.grants, this.delegations, this.revoker);
    this.reaper = new LeaseReaper(this.revoker, clock, { intervalMs: settings.reaperIntervalMs, pendingGraceMs: settings.pendingGraceMs });
  }

  /** Reconciles intents orphaned by a previous process, then starts the reaper. */
  async start(onReaperError: (error: unknown) => void, scheduler?: Scheduler): Promise<RevocationCounts> {
    const reconciled = await reconcilePendingLeases(this.revoker, startupCutoff(this.store.dialect, this.clock.now(), this.settings.pendingGraceMs));
    this.reaper.start(onReaperError, scheduler);
    return reconciled;
  }

  async close(): Promise<void> {
    await this.reaper.stop();
    this.grants.close();
    await this.backends.close();
  }
}
