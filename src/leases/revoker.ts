import type { AuditSink } from '../audit/audit-log.js';
import { requestProofFor } from '../audit/request-proof.js';
import { BackendError } from '../backends/credential-backend.js';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';
import type { Store } from '../store/database.js';
import type { AuditedLeaseChange, ClaimScope } from '../store/repositories/leases.js';
import type { LeaseState } from '../store/schema.js';
import { TurnBatcher } from '../store/turn-batcher.js';
import type { BackendService } from './backend-service.js';
import { retryDelayMs } from './backoff.js';
import { type LeaseRow, revocationHandleOf, toIso } from './lease.js';
import { Semaphore } from './semaphore.js';

export type { ClaimScope };

type FinishedRevocation = AuditedLeaseChange<{ leaseId: string; state: Extract<LeaseState, 'expired' | 'revoked'>; at: number }>;

/** Where failed revocation attempts are reported; the broker's pino logger fits. */
export interface RevocationLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface RevocationCause {
  /** Identity id of whoever asked; null when the broker itself decided (expiry, reconcile). */
  readonly actor: string | null;
  readonly reason: string;
}

export interface RevocationCounts {
  readonly revoked: number;
  readonly pending: number;
}

export interface RevokerOptions {
  /** Upstream revocations in flight per backend, across all callers. */
  readonly concurrencyPerBackend: number;
  /**
   * How long a claimed revocation is reserved for the broker that claimed it. If that broker dies
   * mid-revocation, the lease is retried once this has passed.
   */
  readonly claimTimeoutMs: number;
  readonly batchSize: number;
}

export const SYSTEM_REASONS = { expired: 'expired', reconciled: 'reconciled', mintFailed: 'mint_failed', activationFailed: 'activation_failed' } as const;

/** The final state and audit action of a revocation follow from who asked and why. */
function outcomeOf(row: LeaseRow): { state: Extract<LeaseState, 'expired' | 'revoked'>; action: string } {
  if (row.revoked_by === null && row.revocation_reason === SYSTEM_REASONS.expired) return { state: 'expired', action: 'lease.expired' };
  if (row.revoked_by === null && row.revocation_reason === SYSTEM_REASONS.reconciled) return { state: 'revoked', action: 'lease.reconciled' };
  return { state: 'revoked', action: 'lease.revoked' };
}

/**
 * Revokes leases upstream and records the outcome. A revocation first claims its rows (a
 * conditional UPDATE to revocation-pending, so two brokers never work on the same lease at once),
 * then calls the backend, then marks the lease revoked/expired, or schedules a retry with backoff.
 * Nothing is ever dropped: a lease stays revocation-pending, visible, until its revocation succeeds.
 */
export class LeaseRevoker {
  private readonly limits = new Map<string, Semaphore>();
  /** Revocations finishing in one turn (a batch revoked together upstream) are recorded in one transaction. */
  readonly #finishes: TurnBatcher<FinishedRevocation, boolean>;

  constructor(
    private readonly store: Pick<Store, 'repos' | 'transaction'>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly backends: BackendService,
    private readonly options: RevokerOptions,
    private readonly log?: RevocationLog,
  ) {
    this.#finishes = new TurnBatcher({
      together: (changes) => store.repos.leases.finishRevocations(changes, audit),
      alone: async (change) => (await store.repos.leases.finishRevocations([change], audit))[0]!,
    });
  }

  /**
   * Claims at most one batch of leases in `scope`; `cause` is kept if the lease already has one.
   * Exclusive, and replicas sweeping at once take disjoint batches (LeaseRepository.claim) rather
   * than wait for one another's rows and then find them gone (an empty batch would end a drain early).
   */
  async claim(scope: ClaimScope, cause?: RevocationCause): Promise<LeaseRow[]> {
    const now = this.clock.now();
    return this.store.repos.leases.claim({ scope, now, reservedUntil: now + this.options.claimTimeoutMs, limit: this.options.batchSize, ...(cause && { cause }) });
  }

  /**
   * Takes over one lease whatever its state, for an issue that failed after the intent was
   * recorded: the credential may exist upstream even if someone already marked the lease revoked.
   */
  async abandon(leaseId: string, reason: string): Promise<RevocationCounts> {
    return this.revoke(await this.store.repos.leases.takeOver(leaseId, reason, this.clock.now() + this.options.claimTimeoutMs));
  }

  /** Claims and revokes everything in `scope`, batch by batch, yielding to other work in between. */
  async drain(scope: ClaimScope, cause?: RevocationCause, shouldStop: () => boolean = () => false): Promise<RevocationCounts> {
    let revoked = 0;
    let pending = 0;
    while (!shouldStop()) {
      const rows = await this.claim(scope, cause);
      const counts = await this.revoke(rows);
      revoked += counts.revoked;
      pending += counts.pending;
      if (rows.length < this.options.batchSize) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { revoked, pending };
  }

  /** Revokes claimed rows upstream, bounded per backend. */
  async revoke(rows: readonly LeaseRow[]): Promise<RevocationCounts> {
    const results = await Promise.all(rows.map((row) => this.limitFor(row.backend).run(() => this.attempt(row))));
    const revoked = results.filter(Boolean).length;
    return { revoked, pending: results.length - revoked };
  }

  private limitFor(backend: string): Semaphore {
    let limit = this.limits.get(backend);
    if (!limit) this.limits.set(backend, (limit = new Semaphore(this.options.concurrencyPerBackend)));
    return limit;
  }

  private async attempt(row: LeaseRow): Promise<boolean> {
    try {
      await (await this.backends.instance(row.backend)).revoke(revocationHandleOf(row));
    } catch (error) {
      await this.recordFailure(row, error);
      return false;
    }
    await this.recordSuccess(row);
    return true;
  }

  private async recordSuccess(row: LeaseRow): Promise<void> {
    const { state, action } = outcomeOf(row);
    // Not updated: another broker finished the same (idempotent) revocation first and audited it.
    await this.#finishes.submit({
      change: { leaseId: row.id, state, at: this.clock.now() },
      event: {
        actor: row.revoked_by,
        action,
        outcome: 'success',
        identityId: row.identity_id,
        reason: row.revocation_reason,
        details: { lease_id: row.id, backend: row.backend, role: row.role, attempts: row.attempts + 1 },
        // Written on a later turn of the event loop, outside the request's context: named here.
        proof: requestProofFor(row.revoked_by),
      },
    });
  }

  private async recordFailure(row: LeaseRow, error: unknown): Promise<void> {
    const retryable = !(error instanceof BackendError) || error.retryable;
    // BackendError and TesseraError messages are written to be shown; anything else may not be.
    const message = error instanceof BackendError || error instanceof TesseraError ? error.message : 'unexpected error during revocation';
    const attempts = row.attempts + 1;
    const nextAttemptAt = this.clock.now() + retryDelayMs(attempts);
    this.log?.warn(
      { lease_id: row.id, backend: row.backend, role: row.role, attempts, retryable, next_attempt_at: toIso(nextAttemptAt), reason: message },
      'lease revocation failed; retrying',
    );
    await this.store.transaction(async (repos) => {
      await repos.leases.recordRevocationFailure(row.id, { nextAttemptAt, error: message });
      await this.audit.append(
        {
          actor: row.revoked_by,
          action: 'lease.revocation_failed',
          outcome: 'failure',
          identityId: row.identity_id,
          reason: retryable ? 'retryable' : 'permanent',
          details: { lease_id: row.id, backend: row.backend, role: row.role, attempts, error: message, next_attempt_at: nextAttemptAt },
        },
        repos,
      );
    });
  }
}
