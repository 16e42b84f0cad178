import { listAuditEvents, type ListedAuditEvent } from '../audit/query.js';
import type { Clock } from '../clock.js';
import type { DelegationService } from '../delegations/delegation-service.js';
import { delegationView } from '../delegations/view.js';
import type { Authority } from '../identity/authority.js';
import type { IdentityService } from '../identity/identities.js';
import { parseProofHeader, PROOF_SCHEME, proofReplayableUntil } from '../identity/proof.js';
import { identityView, type IdentityRole, type IdentityStatus, type IdentityView } from '../identity/identity.js';
import type { LeaseFilter, LeaseService, LeaseView } from '../leases/lease-service.js';
import type { Store } from '../store/database.js';
import type { DelegationView } from '@tessera-broker/sdk/wire';
import { type AddressedEvent, withAddresses } from './addresses.js';
import { type AuditQuery, MAX_AUDIT_LIMIT, toAuditFilter } from './audit-filter.js';
import { type ChainStatus, chainStatus } from './chain-status.js';

export type ReviewEvent = ListedAuditEvent &
  AddressedEvent & {
    /** RFC 3339 time until which `proof` is null because it could still be accepted; null once shown. */
    readonly proof_withheld_until: string | null;
  };

/**
 * A stored proof is shown only once no broker can accept it any more: until then a reader could
 * replay it should the replay cache ever miss it (and its jti is only forgotten after that).
 */
function withholdLiveProofs(events: readonly (ListedAuditEvent & AddressedEvent)[], now: number): ReviewEvent[] {
  return events.map((event) => {
    if (event.proof === null) return { ...event, proof_withheld_until: null };
    let showableAt: number;
    try {
      showableAt = proofReplayableUntil(parseProofHeader(`${PROOF_SCHEME} ${event.proof}`).claims.iat);
    } catch {
      return { ...event, proof_withheld_until: null }; // not a proof the broker would parse: nothing to replay
    }
    return now < showableAt ? { ...event, proof: null, proof_withheld_until: new Date(showableAt).toISOString() } : { ...event, proof_withheld_until: null };
  });
}

export interface IdentityTimeline {
  readonly identity: IdentityView;
  readonly leases: LeaseView[];
  readonly delegations: { readonly given: DelegationView[]; readonly received: DelegationView[] };
  /** events about the identity in seq order: provisioned, tickets, enrollment, leases, denials, revocation */
  readonly events: ReviewEvent[];
  /** true when older events were left out (only the newest MAX_AUDIT_LIMIT are returned) */
  readonly truncated: boolean;
}

export interface ReviewReaderDeps {
  readonly store: Store;
  readonly identities: IdentityService;
  readonly leases: LeaseService;
  readonly delegations: DelegationService;
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
    return withholdLiveProofs(await withAddresses(this.deps.store.repos.identities, await listAuditEvents(this.deps.store.repos, filter)), this.deps.clock.now());
  }

  async timeline(address: string): Promise<IdentityTimeline> {
    const identity = await this.deps.identities.getByAddress(address);
    // Newest first, so that a long history keeps its latest events (a revocation) and drops the oldest.
    const newest = await listAuditEvents(this.deps.store.repos, { identityId: identity.id, order: 'desc', limit: MAX_AUDIT_LIMIT + 1 });
    const events = withholdLiveProofs(await withAddresses(this.deps.store.repos.identities, newest.slice(0, MAX_AUDIT_LIMIT).reverse()), this.deps.clock.now());
    return { identity: identityView(identity), leases: await this.leases({ address }), delegations: await this.#delegationsOf(identity.id), events, truncated: newest.length > MAX_AUDIT_LIMIT };
  }

  async #delegationsOf(identityId: string): Promise<IdentityTimeline['delegations']> {
    const { delegations } = this.deps;
    const [given, received] = await Promise.all([delegations.list({ delegatorIdentityId: identityId }), delegations.list({ delegateeIdentityId: identityId })]);
    const addresses = await delegations.addresses([...given, ...received]);
    return { given: given.map((d) => delegationView(d, addresses)), received: received.map((d) => delegationView(d, addresses)) };
  }

  async chainStatus(): Promise<ChainStatus> {
    const { store, authority, publicUrl, clock } = this.deps;
    return chainStatus(store.repos, { issuer: publicUrl, jwks: await authority.auditJwks(), now: clock.now() });
  }
}
