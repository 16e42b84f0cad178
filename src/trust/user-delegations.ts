import type { AuditSink } from '../audit/audit-log.js';
import type { Constraints } from '../backends/http-api/scopes.js';
import type { Clock } from '../clock.js';
import { sha256Base64url } from '../crypto/encoding.js';
import { auditDelegationDenied, type DelegationService } from '../delegations/delegation-service.js';
import { inheritConstraints, narrowingRefusal } from '../delegations/narrowing.js';
import { TesseraError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { BackendService } from '../leases/backend-service.js';
import { leaseRoleRefusal } from '../leases/lease.js';
import type { Delegation } from '../store/repositories/delegations.js';
import type { UserTokenVerifier, VerifiedUserToken } from './user-token-verifier.js';

/** What an agent asks for when it acts for a user (`POST /v1/delegations/user`). */
export interface UserDelegationRequest {
  /** the user's token: verified, hashed, never stored */
  readonly token: string;
  readonly backend: string;
  readonly role: string;
  readonly constraints?: Constraints;
  readonly ttlMs: number;
  readonly purpose: string;
}

/**
 * What a user delegation keeps as evidence of the user's consent: the token's hash and verified
 * claims, not the token, which is a bearer credential until its exp (anyone holding it could act
 * as the user). The agent's own signed request is in the audit event that records the delegation.
 */
export interface UserTokenEvidence {
  readonly kind: 'user-token';
  readonly token_sha256: string;
  readonly issuer: string;
  readonly subject: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * An agent presents a user's token with its own proof and gets a delegation whose root is the
 * user (docs/PROTOCOL.md §13.3): scope inside the agent's own grant, expiry capped by the token's.
 */
export class UserDelegations {
  constructor(
    private readonly verifier: UserTokenVerifier,
    private readonly delegations: DelegationService,
    private readonly backends: BackendService,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
  ) {}

  async create(agent: Identity, request: UserDelegationRequest): Promise<{ delegation: Delegation; user: VerifiedUserToken }> {
    let user: VerifiedUserToken | undefined;
    try {
      const roleRefusal = leaseRoleRefusal(agent);
      if (roleRefusal) throw roleRefusal;
      user = await this.verifier.verify(request.token);
      const principal = { iss: user.issuer, sub: user.subject, claims: user.claims };
      // The agent's grant this user may have it use (the same choice as on every later use), and that the request fits in.
      const whose = `${agent.address}'s grant`;
      const { grant, refusal } = await this.delegations.grantFor(agent, request.backend, request.role, { delegatorUser: principal }, (granted) => narrowingRefusal(granted, request.constraints, whose));
      if (!grant) throw refusal ?? new TesseraError('no_grant', `No grant lets ${agent.address} use ${request.backend}/${request.role}, for itself or for a user.`);
      const constraints = inheritConstraints(JSON.parse(grant.constraints) as Constraints, request.constraints ?? {});
      await this.backends.checkGrant(request.backend, request.role, constraints);
      const evidence: UserTokenEvidence = { kind: 'user-token', token_sha256: user.tokenSha256, issuer: user.issuer, subject: user.subject, claims: user.claims };
      const delegation = await this.delegations.createRoot(
        {
          user: principal,
          delegatee: agent,
          backend: request.backend,
          role: request.role,
          constraints,
          // The agent acts for the user no longer than the user's token vouches for them.
          expiresAt: Math.min(this.clock.now() + request.ttlMs, user.expiresAt),
          purpose: request.purpose,
          evidence,
        },
        agent.id,
      );
      return { delegation, user };
    } catch (error) {
      await auditDelegationDenied(this.audit, agent.id, error, {
        root_kind: 'user',
        backend: request.backend,
        role: request.role,
        token_sha256: sha256Base64url(request.token),
        // Only once verified: an unverified token's claims are whatever its bearer wrote.
        ...(user && { delegator_user: { iss: user.issuer, sub: user.subject } }),
      });
      throw error;
    }
  }
}
