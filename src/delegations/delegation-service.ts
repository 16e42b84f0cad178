import type { AuditSink } from '../audit/audit-log.js';
import type { Constraints } from '../backends/http-api/scopes.js';
import type { Clock } from '../clock.js';
import { randomToken } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { IdentityCache } from '../identity/identity-cache.js';
import type { BackendService } from '../leases/backend-service.js';
import type { Grant, GrantService } from '../leases/grant-service.js';
import { leaseRoleRefusal } from '../leases/lease.js';
import type { LeaseRevoker, RevocationCounts } from '../leases/revoker.js';
import type { Store } from '../store/database.js';
import type { Delegation, DelegationFilter, UserPrincipal } from '../store/repositories/delegations.js';
import type { Repositories } from '../store/repositories/index.js';
import { userClaimRefusal } from '../trust/user-claims.js';
import { type ActClaim, actChain } from './act-chain.js';
import { looserConstraint, narrowedConstraints } from './narrowing.js';

export interface DelegationSettings {
  /** Longest chain from a delegator's own authority (TESSERA_DELEGATION_MAX_DEPTH). */
  readonly maxDepth: number;
}

export const DEFAULT_DELEGATION_SETTINGS: DelegationSettings = { maxDepth: 3 };

/** What an agent asks for when it delegates (`POST /v1/delegations`). */
export interface DelegationRequest {
  /** the delegatee's address */
  readonly delegatee: string;
  readonly backend: string;
  readonly role: string;
  /** Left out: the delegator's own constraints are inherited. */
  readonly constraints?: Constraints;
  readonly ttlMs: number;
  readonly purpose: string;
  /** The delegation the delegator received and delegates from; default: its own grant, else the one delegation that applies. */
  readonly parent?: string;
}

/** An agent delegator's proof (src/delegations/evidence.ts): its request's proof JWS and the exact body the proof's `bh` covers. */
export interface RequestEvidence {
  readonly kind: 'request-proof';
  readonly proof: string;
  readonly body: string;
}

/** A chain's root given by a user (helper userauth): the user-side checks are the caller's. */
export interface UserRootInput {
  readonly user: UserPrincipal;
  readonly delegatee: Identity;
  readonly backend: string;
  readonly role: string;
  readonly constraints: Constraints;
  readonly expiresAt: number;
  readonly purpose: string;
  /** what proves the user's consent (e.g. the token's hash and claims); stored and audited */
  readonly evidence: unknown;
}

/** A chain checked against the current state: what a lease under it may have. */
export interface EffectiveScope {
  /** the link the lease holder received */
  readonly delegation: Delegation;
  /** root first */
  readonly chain: readonly Delegation[];
  /** the grant the chain's authority comes from (the root agent's, or for a user root the acting agent's) */
  readonly grant: Grant;
  /** the tightest constraints along the chain */
  readonly constraints: Constraints;
  /** the earliest expiry along the chain */
  readonly expiresAt: number;
  readonly act: ActClaim;
}

/** The authority a lease or a delegation is made under: the caller's own grant, or a delegation chain. */
export type Authority = { readonly grant: Grant; readonly scope?: undefined } | { readonly grant: Grant; readonly scope: EffectiveScope };

/** What DelegationService.grantFor found: the grant a use acts under, or the most generous grant's refusal (none without any grant). */
export type GrantChoice = { readonly grant: Grant; readonly refusal?: undefined } | { readonly grant?: undefined; readonly refusal: TesseraError | undefined };

export interface DelegationRevocation {
  readonly delegations: number;
  readonly leases: RevocationCounts;
}

const refuse = (code: ConstructorParameters<typeof TesseraError>[0], message: string) => new TesseraError(code, message);

/** Audits a refused delegation (`delegation.denied`, the refusal's code as reason); the caller rethrows. */
export async function auditDelegationDenied(audit: AuditSink, actorId: string, error: unknown, details: Record<string, unknown>): Promise<void> {
  if (!(error instanceof TesseraError)) return;
  await audit.append({ actor: actorId, action: 'delegation.denied', outcome: 'denied', identityId: actorId, reason: error.code, details });
}

/**
 * Delegation of lease authority between identities (docs/PROTOCOL.md §12). A delegation only
 * narrows: the same backend role as the authority it comes from, constraints at least as tight,
 * no later expiry, a bounded depth. That is checked when it is made and again on every use
 * (effectiveScope), since a delegator may since have lost its grant.
 */
export class DelegationService {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly grants: GrantService,
    private readonly backends: BackendService,
    private readonly revoker: LeaseRevoker,
    private readonly settings: DelegationSettings,
    /** what the chain checks outside a transaction read identities through (the authenticator's cache) */
    private readonly identities: IdentityCache,
  ) {
  }

  /** An agent delegates part of its authority to another agent; refusals are audited. */
  async create(delegator: Identity, request: DelegationRequest, evidence: RequestEvidence): Promise<Delegation> {
    try {
      return await this.#create(delegator, request, evidence);
    } catch (error) {
      await auditDelegationDenied(this.audit, delegator.id, error, { delegatee: request.delegatee, backend: request.backend, role: request.role, ...(request.parent && { parent_id: request.parent }) });
      throw error;
    }
  }

  async #create(delegator: Identity, request: DelegationRequest, evidence: RequestEvidence): Promise<Delegation> {
    const refusal = leaseRoleRefusal(delegator);
    if (refusal) throw refusal;
    const delegatee = await this.#delegatee(request.delegatee, delegator);
    const authority = await this.authorityFor(delegator, request.backend, request.role, request.parent);
    // Names and values a grant could hold (after the authority check: no_grant says nothing about the backend).
    await this.backends.checkGrant(request.backend, request.role, request.constraints ?? {});
    const parent = authority.scope;
    const granted = parent?.constraints ?? (JSON.parse(authority.grant.constraints) as Constraints);
    const constraints = narrowedConstraints(granted, request.constraints, "the delegator's");
    const depth = (parent?.delegation.depth ?? 0) + 1;
    if (depth > this.settings.maxDepth) throw refuse('delegation_depth_exceeded', `The chain would be ${depth} deep; the broker allows ${this.settings.maxDepth}.`);
    const now = this.clock.now();
    const expiresAt = now + request.ttlMs;
    if (parent && expiresAt > parent.expiresAt) {
      throw refuse('delegation_expiry_later', `The delegation would expire at ${new Date(expiresAt).toISOString()}, after the chain it is made under (${new Date(parent.expiresAt).toISOString()}).`);
    }
    const delegation: Delegation = {
      id: `dlg_${randomToken(16)}`,
      parentId: parent?.delegation.id ?? null,
      rootKind: parent?.chain[0]!.rootKind ?? 'agent',
      delegatorIdentityId: delegator.id,
      delegatorUser: null,
      delegateeIdentityId: delegatee.id,
      backend: request.backend,
      role: request.role,
      constraints,
      purpose: request.purpose,
      depth,
      expiresAt,
      createdAt: now,
      status: 'active',
      revokedAt: null,
      revokedBy: null,
      revokedReason: null,
      evidence,
    };
    const chain = [...(parent?.chain ?? []), delegation];
    const identities = await this.store.repos.identities.findByIds(chain.flatMap(linkIdentities));
    await this.#record(delegation, delegator.id, { delegatee: delegatee.address, request_body: evidence.body, act: actChain(chain, identities) });
    return delegation;
  }

  /** A chain's root given by a user to an agent (helper userauth checks the user's token first). */
  async createRoot(input: UserRootInput, actor: string): Promise<Delegation> {
    if (leaseRoleRefusal(input.delegatee) || input.delegatee.status !== 'active') throw refuse('delegatee_invalid', `${input.delegatee.address} cannot act for a user.`);
    const now = this.clock.now();
    const delegation: Delegation = {
      id: `dlg_${randomToken(16)}`,
      parentId: null,
      rootKind: 'user',
      delegatorIdentityId: null,
      delegatorUser: input.user,
      delegateeIdentityId: input.delegatee.id,
      backend: input.backend,
      role: input.role,
      constraints: input.constraints,
      purpose: input.purpose,
      depth: 1,
      expiresAt: input.expiresAt,
      createdAt: now,
      status: 'active',
      revokedAt: null,
      revokedBy: null,
      revokedReason: null,
      evidence: input.evidence,
    };
    // The same checks as on every use: the acting agent must hold a grant the scope fits in.
    await this.#record(delegation, actor, { delegatee: input.delegatee.address, act: actChain([delegation], new Map([[input.delegatee.id, input.delegatee]])) }, async (trx) => {
      // Inside the transaction: the state it sees, not a cache.
      await this.#scopeOf([delegation], trx.identities, now);
    });
    return delegation;
  }

  async #record(delegation: Delegation, actor: string, extra: Record<string, unknown>, check?: (repos: Repositories) => Promise<unknown>): Promise<void> {
    await this.store.transaction(async (repos) => {
      await check?.(repos);
      await repos.delegations.insert(delegation);
      await this.audit.append(
        {
          actor,
          action: 'delegation.created',
          outcome: 'success',
          identityId: delegation.delegateeIdentityId,
          details: {
            delegation_id: delegation.id,
            parent_id: delegation.parentId,
            root_kind: delegation.rootKind,
            delegator_identity_id: delegation.delegatorIdentityId,
            delegator_user: delegation.delegatorUser,
            delegatee_identity_id: delegation.delegateeIdentityId,
            backend: delegation.backend,
            role: delegation.role,
            constraints: delegation.constraints,
            purpose: delegation.purpose,
            depth: delegation.depth,
            expires_at: delegation.expiresAt,
            ...extra,
          },
        },
        repos,
      );
    });
  }

  async #delegatee(address: string, delegator: Identity): Promise<Identity> {
    const found = await this.store.repos.identities.findByAddress(address);
    if (!found || found.id === delegator.id || found.status !== 'active' || leaseRoleRefusal(found)) {
      throw refuse('delegatee_invalid', `${address} is not another enrolled, active agent identity.`);
    }
    return found;
  }

  /**
   * The authority `identity` acts under for a backend role. With `delegationId`: that delegation,
   * which the identity must hold, checked now. Without: the identity's own grant; failing that, the
   * one active delegation it holds for the backend role (several: delegation_ambiguous; none: no_grant).
   */
  async authorityFor(identity: Identity, backend: string, role: string, delegationId?: string): Promise<Authority> {
    if (delegationId === undefined) {
      // For itself: a grant that requires acting for a user is used only through a user's delegation.
      const { grant, refusal } = await this.grantFor(identity, backend, role, undefined);
      if (grant) return { grant };
      const received = await this.store.repos.delegations.activeReceived(identity.id, backend, role, this.clock.now());
      if (received.length === 0 && refusal) throw refusal;
      if (received.length === 0) throw refuse('no_grant', `No grant or delegation lets ${identity.address} use ${backend}/${role}.`);
      if (received.length > 1) throw refuse('delegation_ambiguous', `${received.length} delegations apply to ${backend}/${role} (${received.map((d) => d.id).join(', ')}): name one.`);
      delegationId = received[0]!.id;
    }
    const scope = await this.effectiveScope(delegationId);
    if (scope.delegation.delegateeIdentityId !== identity.id) throw refuse('not_found', `No delegation ${delegationId}.`);
    if (scope.delegation.backend !== backend || scope.delegation.role !== role) {
      throw refuse('delegation_scope_wider', `Delegation ${delegationId} covers ${scope.delegation.backend}/${scope.delegation.role}, not ${backend}/${role}.`);
    }
    return { grant: scope.grant, scope };
  }

  /** Walks the chain up from `delegationId` and checks every link against the current state. */
  async effectiveScope(delegationId: string): Promise<EffectiveScope> {
    const chain = (await this.store.repos.delegations.chain(delegationId)).reverse();
    if (chain.length === 0) throw refuse('not_found', `No delegation ${delegationId}.`);
    // Every delegated lease and renewal checks its chain: its identities come from the cache the
    // change feed keeps current (a revoked or suspended one drops out before the write's response).
    return this.#scopeOf(chain, this.identities, this.clock.now());
  }

  async #scopeOf(chain: readonly Delegation[], lookup: Pick<IdentityCache, 'findByIds'>, now: number): Promise<EffectiveScope> {
    const identities = await lookup.findByIds(chain.flatMap(linkIdentities));
    const root = chain[0]!;
    const leaf = chain[chain.length - 1]!;
    let expiresAt = Number.POSITIVE_INFINITY;
    for (const [index, link] of chain.entries()) {
      if (link.status !== 'active') throw refuse('delegation_revoked', `Delegation ${link.id} has been revoked.`);
      if (link.expiresAt <= now) throw refuse('delegation_expired', `Delegation ${link.id} expired at ${new Date(link.expiresAt).toISOString()}.`);
      for (const id of linkIdentities(link)) {
        if (identities.get(id)?.status !== 'active') throw refuse('delegation_revoked', `An identity in delegation ${link.id}'s chain is no longer active.`);
      }
      if (link.depth > this.settings.maxDepth) throw refuse('delegation_depth_exceeded', `Delegation ${link.id} is ${link.depth} deep; the broker allows ${this.settings.maxDepth}.`);
      const parent = index > 0 ? chain[index - 1]! : undefined;
      if (parent && (link.delegatorIdentityId !== parent.delegateeIdentityId || link.backend !== parent.backend || link.role !== parent.role || looserConstraint(parent.constraints, link.constraints) !== null)) {
        throw refuse('delegation_scope_wider', `Delegation ${link.id} is wider than ${parent.id}.`);
      }
      expiresAt = Math.min(expiresAt, link.expiresAt);
    }
    // The chain's authority: the root agent's own grant, or for a user's root the acting agent's.
    const anchor = identities.get(root.rootKind === 'agent' ? root.delegatorIdentityId! : root.delegateeIdentityId)!;
    const lost = refuse('delegation_authority_lost', `${anchor.address} no longer holds a grant covering delegation ${root.id}.`);
    const { grant, refusal } = await this.grantFor(anchor, root.backend, root.role, root, (granted) => (looserConstraint(granted, root.constraints) === null ? undefined : lost));
    if (!grant) throw refusal ?? lost;
    return { delegation: leaf, chain, grant, constraints: leaf.constraints, expiresAt, act: actChain(chain, identities) };
  }

  /**
   * The grant `identity` acts under for a backend role, one path for every use: its own leases (`root`
   * undefined), a chain rooted at it, or at a user it acts for (`root` a user's root). Of its grants,
   * the most generous first, the first that `root` may use (a grant with required user claims only
   * for a user who has them: src/trust/user-claims.ts) and that `fits` (the use's constraints) allows.
   */
  async grantFor(identity: Identity, backend: string, role: string, root: Pick<Delegation, 'delegatorUser'> | undefined, fits: (granted: Constraints) => TesseraError | undefined = () => undefined): Promise<GrantChoice> {
    const grants = await this.grants.forRole(identity, backend, role);
    const refusals = grants.map((grant) => fits(JSON.parse(grant.constraints) as Constraints) ?? userClaimRefusal(grant, root));
    const usable = refusals.indexOf(undefined);
    return usable >= 0 ? { grant: grants[usable]! } : { refusal: refusals[0] };
  }

  async get(id: string): Promise<Delegation> {
    const delegation = await this.store.repos.delegations.get(id);
    if (!delegation) throw refuse('not_found', `No delegation ${id}.`);
    return delegation;
  }

  /** `id` as `caller` may see it: admins see every delegation, an agent those whose chain it is in. */
  async visible(caller: Identity, id: string): Promise<Delegation> {
    if (caller.role === 'admin') return this.get(id);
    const chain = await this.store.repos.delegations.chain(id);
    if (!chain.some((link) => link.delegatorIdentityId === caller.id || link.delegateeIdentityId === caller.id)) throw refuse('not_found', `No delegation ${id}.`);
    return chain[0]!;
  }

  /** `id` and its ancestors, root first. */
  async chainOf(id: string): Promise<Delegation[]> {
    return (await this.store.repos.delegations.chain(id)).reverse();
  }

  list(filter: DelegationFilter, limit = 1000): Promise<Delegation[]> {
    return this.store.repos.delegations.list(filter, limit);
  }

  /** Address of every identity the delegations name (for views). */
  async addresses(delegations: readonly Delegation[]): Promise<Map<string, string>> {
    const identities = await this.store.repos.identities.findByIds(delegations.flatMap(linkIdentities));
    return new Map([...identities].map(([id, identity]) => [id, identity.address]));
  }

  /**
   * Revokes delegation `id`, every delegation below it, and every lease obtained through them
   * (upstream, as an identity revocation does). An agent may revoke a delegation whose chain it is in.
   */
  async revoke(caller: Identity, id: string, reason: string): Promise<DelegationRevocation> {
    await this.visible(caller, id);
    return this.revokeCascade([id], { actor: caller.id, reason });
  }

  /** What an identity revocation cuts: every chain the identity gives or receives in. */
  async revokeForIdentity(identityId: string, cause: { actor: string | null; reason: string }): Promise<DelegationRevocation> {
    return this.revokeCascade(await this.store.repos.delegations.activeTouching(identityId), cause);
  }

  async revokeCascade(ids: readonly string[], cause: { actor: string | null; reason: string }): Promise<DelegationRevocation> {
    const { revoked, subtree } = await this.store.transaction(async (repos) => {
      const result = await repos.delegations.revokeSubtrees(ids, { ...cause, at: this.clock.now() });
      for (const link of result.revoked) {
        await this.audit.append(
          {
            actor: cause.actor,
            action: 'delegation.revoked',
            outcome: 'success',
            identityId: link.delegateeIdentityId,
            reason: cause.reason,
            details: { delegation_id: link.id, parent_id: link.parentId, backend: link.backend, role: link.role },
          },
          repos,
        );
      }
      return result;
    });
    const leases = subtree.length === 0 ? { revoked: 0, pending: 0 } : await this.revoker.drain({ kind: 'live', delegationIds: subtree }, { actor: cause.actor, reason: 'delegation_revoked' });
    return { delegations: revoked.length, leases };
  }
}

/** The identities a link names: its delegatee and, for an agent delegator, the delegator. */
const linkIdentities = (link: Delegation): string[] => (link.delegatorIdentityId === null ? [link.delegateeIdentityId] : [link.delegatorIdentityId, link.delegateeIdentityId]);
