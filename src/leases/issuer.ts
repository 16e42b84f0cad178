import type { AuditSink } from '../audit/audit-log.js';
import { requestProofFor } from '../audit/request-proof.js';
import type { IssuedCredential } from '../backends/credential-backend.js';
import type { Clock } from '../clock.js';
import type { DelegationService } from '../delegations/delegation-service.js';
import { randomToken } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { Store } from '../store/database.js';
import type { AuditedLeaseChange } from '../store/repositories/leases.js';
import { TurnBatcher } from '../store/turn-batcher.js';
import type { BackendService } from './backend-service.js';
import { leaseRoleRefusal, type LeaseRow } from './lease.js';
import { type LeaseRevoker, SYSTEM_REASONS } from './revoker.js';
import { upstreamError } from './upstream-error.js';

export interface LeaseRequest {
  readonly backend: string;
  readonly role: string;
  readonly ttlMs?: number;
  /** The delegation to lease under (src/delegations/); default: the caller's own grant, else the one delegation that applies. */
  readonly delegation?: string;
}

export interface IssuedLease {
  readonly lease: LeaseRow;
  /** The backend's type (postgres, stripe, ...): tells the agent what shape `credential` has. */
  readonly backendType: string;
  /** Handed to the agent once; never stored or audited. */
  readonly credential: IssuedCredential;
}

type Activation = AuditedLeaseChange<{ leaseId: string; identityId: string }>;

/**
 * Issues leases in the crash-safe order: plan -> record the intent (pending, with everything
 * revoke() needs) -> mint upstream -> activate and audit in one transaction. Whatever fails after
 * the intent is recorded is revoked at once; if the broker dies instead, reconcile revokes it.
 */
export class LeaseIssuer {
  /**
   * Concurrent issuances write their intents, and later their activations, together: one commit
   * per step for all the requests in flight, instead of one each (TurnBatcher). An intent is
   * still committed before its credential is minted.
   */
  readonly #intents: TurnBatcher<LeaseRow, void>;
  readonly #activations: TurnBatcher<Activation, boolean>;

  constructor(
    store: Pick<Store, 'repos'>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly backends: BackendService,
    private readonly delegations: DelegationService,
    private readonly revoker: LeaseRevoker,
  ) {
    this.#intents = new TurnBatcher({
      together: async (intents) => {
        await store.repos.leases.insertIntents(intents);
        return intents.map(() => undefined);
      },
      alone: (intent) => store.repos.leases.insertIntent(intent),
      // Requests reach this step together: woken by one batch of the replay cache.
      gather: 'tick',
    });
    this.#activations = new TurnBatcher({
      // Woken together by one batch of the backend's mint.
      gather: 'tick',
      together: (changes) => store.repos.leases.activate(changes, audit),
      alone: async (change) => (await store.repos.leases.activate([change], audit))[0]!,
    });
  }

  async issue(identity: Identity, request: LeaseRequest): Promise<IssuedLease> {
    const deny = async (error: TesseraError, leaseId?: string) => {
      await this.audit.append({
        actor: identity.id,
        action: 'lease.denied',
        outcome: 'denied',
        identityId: identity.id,
        reason: error.code,
        details: {
          backend: request.backend,
          role: request.role,
          ...(leaseId && { lease_id: leaseId }),
          ...(request.ttlMs && { ttl_ms: request.ttlMs }),
          ...(request.delegation && { delegation_id: request.delegation }),
        },
      });
      return error;
    };

    const refusal = leaseRoleRefusal(identity);
    if (refusal) throw await deny(refusal);
    // No grant (nor delegation) also covers an unknown backend or role: deny by default, without saying which.
    const authority = await this.delegations.authorityFor(identity, request.backend, request.role, request.delegation).catch(async (error: unknown) => {
      throw error instanceof TesseraError ? await deny(error) : error;
    });
    const { grant, scope } = authority;
    const ttlMs = request.ttlMs ?? grant.default_ttl_ms;
    if (ttlMs > grant.max_ttl_ms) {
      throw await deny(new TesseraError('ttl_exceeds_max', `The grant allows at most ${grant.max_ttl_ms / 1000} s.`));
    }
    const backend = await this.backends.instance(request.backend).catch(async (error: unknown) => {
      throw await deny(new TesseraError('backend_unavailable', `Backend ${request.backend} cannot be opened.`, { cause: error }));
    });

    const now = this.clock.now();
    const leaseId = `lse_${randomToken(16)}`;
    // Under a delegation the lease ends with the chain, however long the grant would allow.
    const chainEnd = scope?.expiresAt ?? Number.POSITIVE_INFINITY;
    const expiresAt = Math.min(now + ttlMs, chainEnd);
    const mint = { leaseId, role: request.role, expiresAt: new Date(expiresAt) };
    const plan = backend.plan(mint);
    const intent: LeaseRow = {
      id: leaseId,
      identity_id: identity.id,
      backend: request.backend,
      role: request.role,
      grant_id: grant.id,
      state: 'pending',
      revocation: JSON.stringify(plan.revocation),
      issued_at: now,
      expires_at: expiresAt,
      max_expires_at: Math.min(now + grant.max_ttl_ms, chainEnd),
      revoked_at: null,
      revoked_by: null,
      revocation_reason: null,
      attempts: 0,
      next_attempt_at: null,
      last_error: null,
      token_hash: plan.tokenHash ?? null,
      // The lease keeps the scope it was granted, even if the grant changes later.
      constraints: scope ? JSON.stringify(scope.constraints) : grant.constraints,
      delegation_id: scope?.delegation.id ?? null,
      act: scope ? JSON.stringify(scope.act) : null,
    };
    await this.#intents.submit(intent);

    let credential: IssuedCredential;
    try {
      credential = await backend.mint(mint, plan);
    } catch (error) {
      await this.abandon(leaseId, SYSTEM_REASONS.mintFailed);
      throw await deny(upstreamError(error), leaseId);
    }
    let activated: boolean;
    try {
      activated = await this.activate(intent);
    } catch (error) {
      await this.abandon(leaseId, SYSTEM_REASONS.activationFailed);
      throw error;
    }
    if (!activated) {
      await this.abandon(leaseId, SYSTEM_REASONS.activationFailed);
      throw await deny(new TesseraError('lease_inactive', 'The lease was revoked while it was being issued.'), leaseId);
    }
    return { lease: { ...intent, state: 'active' }, backendType: backend.type, credential };
  }

  /** Only a still-pending lease of a still-active identity becomes active (see identity revocation). */
  private activate(lease: LeaseRow): Promise<boolean> {
    return this.#activations.submit({
      change: { leaseId: lease.id, identityId: lease.identity_id },
      event: {
        actor: lease.identity_id,
        action: 'lease.granted',
        outcome: 'success',
        identityId: lease.identity_id,
        details: {
          lease_id: lease.id,
          backend: lease.backend,
          role: lease.role,
          grant_id: lease.grant_id,
          expires_at: lease.expires_at,
          max_expires_at: lease.max_expires_at,
          ...(lease.delegation_id !== null && { delegation_id: lease.delegation_id, act: JSON.parse(lease.act!) as unknown }),
        },
        // Written on a later turn of the event loop, outside the request's context: named here.
        proof: requestProofFor(lease.identity_id),
      },
    });
  }

  /** Best effort: if even this fails, the lease stays pending and the reaper reconciles it. */
  private async abandon(leaseId: string, reason: string): Promise<void> {
    await this.revoker.abandon(leaseId, reason).catch(() => undefined);
  }
}
