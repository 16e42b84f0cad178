import type { IdentityView } from '../identity/identity.js';
import type { LeaseView } from '../leases/lease-service.js';
import type { ReviewEvent } from '../review/reader.js';
import { actingForCell } from './acting-for.js';
import { auditLink, identityLink, stateBadge, table, when } from './components.js';
import { type Html, html } from './html.js';

const attributes = (values: Readonly<Record<string, string>>): Html =>
  html`${Object.entries(values).map(([key, value]) => html`<span class="chip">${key}=${value}</span>`)}`;

export function identityTable(identities: readonly IdentityView[], empty = 'No identities.'): Html {
  return table(
    ['Address', 'Role', 'Status', 'Attributes', 'Created', 'Enrolled', 'Revoked', 'Revocation reason'],
    identities.map(
      (identity) => html`<tr class="${`row-${identity.status}`}">
        <td>${identityLink(identity.address)}</td>
        <td>${identity.role}</td>
        <td>${stateBadge(identity.status)}</td>
        <td>${attributes(identity.attributes)}</td>
        <td>${when(identity.created_at)}</td>
        <td>${when(identity.enrolled_at)}</td>
        <td>${when(identity.revoked_at)}</td>
        <td class="reason">${identity.revocation_reason ?? ''}</td>
      </tr>`,
    ),
    empty,
  );
}

export function leaseTable(leases: readonly LeaseView[], empty: string): Html {
  return table(
    ['Lease', 'Identity', 'Backend', 'Role', 'State', 'Issued', 'Expires', 'Revoked', 'Reason'],
    leases.map(
      (lease) => html`<tr class="${`row-${lease.state}`}">
        <td class="mono">${auditLink(lease.lease_id, { lease: lease.lease_id })}</td>
        <td>${identityLink(lease.address, lease.identity_id)}</td>
        <td>${auditLink(lease.backend, { backend: lease.backend })}</td>
        <td>${lease.role}</td>
        <td>${stateBadge(lease.state)}</td>
        <td>${when(lease.issued_at)}</td>
        <td>${when(lease.expires_at)}</td>
        <td>${when(lease.revoked_at)}</td>
        <td class="reason">${lease.revocation_reason ?? lease.last_error ?? ''}</td>
      </tr>`,
    ),
    empty,
  );
}

/** Details as `key=value` chips; nested values as compact JSON, all escaped. */
const details = (values: Readonly<Record<string, unknown>>): Html =>
  html`${Object.entries(values).map(([key, value]) => html`<span class="chip">${key}=${typeof value === 'string' ? value : JSON.stringify(value)}</span>`)}`;

/** Whether the actor's signed request proof is stored; a proof that could still be accepted is not shown yet. */
function proofCell(event: ReviewEvent): Html | string {
  if (event.proof_withheld_until !== null) {
    return html`<span class="signed" title="the actor's signed request proof is stored with this event, withheld while it could still be accepted">signed, withheld until ${when(event.proof_withheld_until)}</span>`;
  }
  return event.proof === null ? '' : html`<span class="signed" title="the actor's signed request proof is stored with this event">signed</span>`;
}

export function eventTable(events: readonly ReviewEvent[], empty: string): Html {
  return table(
    ['Seq', 'Time', 'Action', 'Outcome', 'Actor', 'Identity', 'Reason', 'Details', 'Acting for', 'Proof'],
    events.map(
      (event) => html`<tr class="${`row-${event.outcome}`}">
        <td class="mono">${event.seq}</td>
        <td>${when(event.at)}</td>
        <td class="mono">${auditLink(event.action, { action: event.action })}</td>
        <td>${stateBadge(event.outcome)}</td>
        <td>${event.actor === null ? html`<span class="none">anonymous</span>` : identityLink(event.actor_address, event.actor)}</td>
        <td>${event.identity_id === null ? '' : identityLink(event.identity_address, event.identity_id)}</td>
        <td class="reason">${event.reason ?? ''}</td>
        <td class="details">${details(event.details)}</td>
        <td class="chain">${actingForCell(event.details)}</td>
        <td>${proofCell(event)}</td>
      </tr>`,
    ),
    empty,
  );
}
