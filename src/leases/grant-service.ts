import type { AuditSink } from '../audit/audit-log.js';
import type { Constraints } from '../backends/http-api/scopes.js';
import type { ChangeFeed } from '../changes/change-feed.js';
import { FeedCache } from '../changes/feed-cache.js';
import type { Clock } from '../clock.js';
import { randomToken } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { Store } from '../store/database.js';
import type { Grant } from '../store/repositories/grants.js';
import type { BackendService } from './backend-service.js';

export type { Grant };

export interface NewGrant {
  readonly subject: string;
  readonly backend: string;
  readonly role: string;
  readonly maxTtlMs: number;
  readonly defaultTtlMs?: number;
  /** Scope constraints of proxied backends, e.g. {max_amount: "5000"}. */
  readonly constraints?: Constraints;
  /** Claims the user a lease acts for must carry, e.g. {groups: "support"}: no lease without such a user. */
  readonly requiredUserClaims?: Readonly<Record<string, string>>;
}

const ATTRIBUTE_SUBJECT = 'attr:';

/** The subjects that name `identity`: its address and one `attr:key=value` per attribute. */
function subjectsOf(identity: Identity): string[] {
  return [identity.address, ...Object.entries(identity.attributes).map(([key, value]) => `${ATTRIBUTE_SUBJECT}${key}=${value}`)];
}

/** Who may lease which backend role, for how long. Deny by default: no matching grant, no lease. */
export class GrantService {
  /**
   * forRole()'s answers by query, between requests: every lease request asks, and grants change
   * only when an admin creates or revokes one. Any grant change, by any broker, drops them all.
   */
  readonly #byRole: FeedCache<Grant[]>;

  constructor(
    private readonly store: Pick<Store, 'repos' | 'transaction'>,
    private readonly audit: AuditSink,
    private readonly clock: Clock,
    private readonly backends: BackendService,
    feed: ChangeFeed,
  ) {
    this.#byRole = new FeedCache(feed, 'grant', { dropAllOnChange: true });
  }

  async create(input: NewGrant, actor: string): Promise<Grant> {
    const defaultTtlMs = input.defaultTtlMs ?? input.maxTtlMs;
    if (defaultTtlMs > input.maxTtlMs) throw new TesseraError('invalid_request', 'default_ttl_seconds must not exceed max_ttl_seconds.');
    const constraints = input.constraints ?? {};
    await this.backends.checkGrant(input.backend, input.role, constraints);
    const grant: Grant = {
      id: `grt_${randomToken(12)}`,
      subject: input.subject,
      backend: input.backend,
      role: input.role,
      max_ttl_ms: input.maxTtlMs,
      default_ttl_ms: defaultTtlMs,
      constraints: JSON.stringify(constraints),
      required_user_claims: JSON.stringify(input.requiredUserClaims ?? {}),
      created_at: this.clock.now(),
      created_by: actor,
    };
    await this.store.transaction(async (repos) => {
      await repos.grants.insert(grant);
      await this.audit.append({ actor, action: 'grant.created', outcome: 'success', details: grantDetails(grant) }, repos);
    });
    return grant;
  }

  async list(filter: { backend?: string; subject?: string } = {}): Promise<Grant[]> {
    return this.store.repos.grants.list(filter);
  }

  async revoke(id: string, actor: string): Promise<void> {
    await this.store.transaction(async (repos) => {
      const grant = await repos.grants.remove(id);
      if (!grant) throw new TesseraError('not_found', `No grant ${id}.`);
      await this.audit.append({ actor, action: 'grant.revoked', outcome: 'success', details: grantDetails(grant) }, repos);
    });
  }

  /** The identity's grants for the backend role, the most generous first (which one a use may use: DelegationService.grantFor). */
  async forRole(identity: Identity, backend: string, role: string): Promise<Grant[]> {
    const subjects = subjectsOf(identity);
    const key = JSON.stringify([backend, role, ...subjects]);
    return (await this.#byRole.get(key, () => this.store.repos.grants.mostGenerousFirst(backend, role, subjects)))!;
  }

  async findById(id: string): Promise<Grant | undefined> {
    return this.store.repos.grants.findById(id);
  }

  close(): void {
    this.#byRole.close();
  }
}

const grantDetails = (grant: Grant) => ({
  grant_id: grant.id,
  subject: grant.subject,
  backend: grant.backend,
  role: grant.role,
  max_ttl_ms: grant.max_ttl_ms,
  default_ttl_ms: grant.default_ttl_ms,
  constraints: JSON.parse(grant.constraints) as Constraints,
  required_user_claims: JSON.parse(grant.required_user_claims) as Record<string, string>,
});
