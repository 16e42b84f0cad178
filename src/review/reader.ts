import { listAuditEvents, type ListedAuditEvent } from '../audit/query.js';
import type { Clock } from '../clock.js';
import type { Authority } from '../identity/authority.js';
import type { IdentityService } from '../identity/identities.js';
import { identityView, type IdentityRole, type IdentityStatus, type IdentityView } from '../identity/identity.js';
import type { LeaseFilter, LeaseService, LeaseView } from '../leases/lease-service.js';
import type { Store } from '../store/database.js';
import { type AddressedEvent, withAddresses } from './addresses.js';
import { type AuditQuery, MAX_AUDIT_LIMIT, toAuditFilter } from './audit-filter.js';
import { type ChainStatus, chainStatus } from './chain-status.js';

export type ReviewEvent = ListedAuditEvent & AddressedEvent;

export interface IdentityTimeline {
  readonly identity: IdentityView;
  readonly leases: LeaseView[];
  /** events about the identity in seq order: provisioned, tickets, enrollment, leases, denials, revocation */
  readonly events: ReviewEvent[];
  /** true when older events were left out (only the newest MAX_AUDIT_LIMIT are returned) */
  readonly truncated: boolean;
}

export interface ReviewReaderDeps {
  readonly store: Store;
  readonly identities: IdentityService;
  readonly leases: LeaseService;
  readonly authority: Authority;
  readonly publicUrl: string;
  readonly clock: Clock;
}

/**
 * Everything a reviewer can see, read-only: the JSON routes, the CLI and the review page all read
 * through here, so they show the same data with the same filters.
 */
export class ReviewReader {
  constructor(private readonly deps: ReviewReaderDeps) {}

  async identities(filter: { status?: IdentityStatus; role?: IdentityRole } = {}): Promise<IdentityView[]> {
    return (await this.deps.identities.list(filter)).map(identityView);
  }

  leases(filter: LeaseFilter = {}): Promise<LeaseView[]> {
    return this.deps.leases.list(filter);
  }

  async audit(query: AuditQuery): Promise<ReviewEvent[]> {
    const filter = await toAuditFilter(query, this.deps.identities);
    return withAddresses(this.deps.store.db, await listAuditEvents(this.deps.store, filter));
  }

  async timeline(address: string): Promise<IdentityTimeline> {
    const identity = await this.deps.identities.getByAddress(address);
    // Newest first, so that a long history keeps its latest events (a revocation) and drops the oldest.
    const newest = await listAuditEvents(this.deps.store, { identityId: identity.id, order: 'desc', limit: MAX_AUDIT_LIMIT + 1 });
    const events = await withAddresses(this.deps.store.db, newest.slice(0, MAX_AUDIT_LIMIT).reverse());
    return { identity: identityView(identity), leases: await this.leases({ address }), events, truncated: newest.length > MAX_AUDIT_LIMIT };
  }

  chainStatus(): Promise<ChainStatus> {
    const { store, authority, publicUrl, clock } = this.deps;
    return chainStatus(store.db, { issuer: publicUrl, jwks: authority.jwks(), now: clock.now() });
  }
}
