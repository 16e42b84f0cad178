import { type Kysely, sql } from 'kysely';
import type { AuditSink } from '../audit/audit-log.js';
import { auditedUpdate } from '../audit/audited-update.js';
import type { IssuedCredential } from '../backends/credential-backend.js';
import type { Clock } from '../clock.js';
import { randomToken } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import { precompiled } from '../store/precompiled.js';
import type { Database } from '../store/schema.js';
import type { BackendService } from './backend-service.js';
import type { GrantService } from './grant-service.js';
import { leaseRoleRefusal, type LeaseRow } from './lease.js';
import { type LeaseRevoker, SYSTEM_REASONS } from './revoker.js';
import { upstreamError } from './upstream-error.js';

export interface LeaseRequest {
  readonly backend: string;
  readonly role: string;
  readonly ttlMs?: number;
}

export interface IssuedLease {
  readonly lease: LeaseRow;
  /** The backend's type (postgres, stripe, ...): tells the agent what shape `credential` has. */
  readonly backendType: string;
  /** Handed to the agent once; never stored or audited. */
  readonly credential: IssuedCredential;
}

const LEASE_COLUMNS = [
  'id', 'identity_id', 'backend', 'role', 'grant_id', 'state', 'revocation', 'issued_at', 'expires_at', 'max_expires_at', 'revoked_at',
  'revoked_by', 'revocation_reason', 'attempts', 'next_attempt_at', 'last_error', 'token_hash', 'constraints',
] as const satisfies readonly (keyof LeaseRow)[];

// The two writes of every issuance, compiled once (see precompiled.ts).
const insertIntent = precompiled((db, ...values: unknown[]) => db.insertInto('leases').values(Object.fromEntries(LEASE_COLUMNS.map((column, i) => [column, values[i]])) as LeaseRow), LEASE_COLUMNS);
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

/**
 * Issues leases in the crash-safe order: plan -> record the intent (pending, with everything
 * revoke() needs) -> mint upstream -> activate and audit in one transaction. Whatever fails after
 * the intent is recorded is revoked at once; if the broker dies instead, reconcile revokes it.
 */
export class LeaseIssuer {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly backends: BackendService,
    private readonly grants: GrantService,
    private readonly revoker: LeaseRevoker,
  ) {}

  async issue(identity: Identity, request: LeaseRequest): Promise<IssuedLease> {
    const deny = async (error: TesseraError, leaseId?: string) => {
      await this.audit.append({
        actor: identity.id,
        action: 'lease.denied',
        outcome: 'denied',
        identityId: identity.id,
        reason: error.code,
        details: { backend: request.backend, role: request.role, ...(leaseId && { lease_id: leaseId }), ...(request.ttlMs && { ttl_ms: request.ttlMs }) },
      });
      return error;
    };

    const refusal = leaseRoleRefusal(identity);
    if (refusal) throw await deny(refusal);
    // No grant also covers an unknown backend or role: deny by default, without saying which.
    const grant = await this.grants.find(identity, request.backend, request.role);
    if (!grant) throw await deny(new TesseraError('no_grant', `No grant lets ${identity.address} lease ${request.backend}/${request.role}.`));
    const ttlMs = request.ttlMs ?? grant.default_ttl_ms;
    if (ttlMs > grant.max_ttl_ms) {
      throw await deny(new TesseraError('ttl_exceeds_max', `The grant allows at most ${grant.max_ttl_ms / 1000} s.`));
    }
    const backend = await this.backends.instance(request.backend).catch(async (error: unknown) => {
      throw await deny(new TesseraError('backend_unavailable', `Backend ${request.backend} cannot be opened.`, { cause: error }));
    });

    const now = this.clock.now();
    const leaseId = `lse_${randomToken(16)}`;
    const mint = { leaseId, role: request.role, expiresAt: new Date(now + ttlMs) };
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
      expires_at: now + ttlMs,
      max_expires_at: now + grant.max_ttl_ms,
      revoked_at: null,
      revoked_by: null,
      revocation_reason: null,
      attempts: 0,
      next_attempt_at: null,
      last_error: null,
      token_hash: plan.tokenHash ?? null,
      // The lease keeps the scope it was granted, even if the grant changes later.
      constraints: grant.constraints,
    };
    await insertIntent(this.db, LEASE_COLUMNS.map((column) => intent[column]));

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
    return auditedUpdate(this.db, this.audit, activateIntent, [lease.id, lease.identity_id], {
      actor: lease.identity_id,
      action: 'lease.granted',
      outcome: 'success',
      identityId: lease.identity_id,
      details: { lease_id: lease.id, backend: lease.backend, role: lease.role, grant_id: lease.grant_id, expires_at: lease.expires_at, max_expires_at: lease.max_expires_at },
    });
  }

  /** Best effort: if even this fails, the lease stays pending and the reaper reconciles it. */
  private async abandon(leaseId: string, reason: string): Promise<void> {
    await this.revoker.abandon(leaseId, reason).catch(() => undefined);
  }
}
