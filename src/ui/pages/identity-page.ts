import type { IdentityTimeline } from '../../review/reader.js';
import { auditLink, section, stateBadge, when } from '../components.js';
import { type Html, html } from '../html.js';
import { eventTable, leaseTable } from '../tables.js';

function facts(timeline: IdentityTimeline): Html {
  const { identity } = timeline;
  return html`<dl class="facts">
    <dt>Status</dt><dd>${stateBadge(identity.status)}</dd>
    <dt>Role</dt><dd>${identity.role}</dd>
    <dt>Identity id</dt><dd class="mono">${identity.identity_id}</dd>
    <dt>Key</dt><dd class="mono">${identity.key_uri}</dd>
    <dt>Attributes</dt><dd>${Object.entries(identity.attributes).map(([key, value]) => html`<span class="chip">${key}=${value}</span>`)}</dd>
    <dt>Created</dt><dd>${when(identity.created_at)}</dd>
    <dt>Enrolled</dt><dd>${when(identity.enrolled_at)}</dd>
    <dt>Revoked</dt><dd>${when(identity.revoked_at)}</dd>
    <dt>Revocation reason</dt><dd class="reason">${identity.revocation_reason ?? '—'}</dd>
  </dl>`;
}

/** One identity's story: who provisioned it, tickets, enrollment, leases, denials, revocation. */
export function identityPage(timeline: IdentityTimeline): Html {
  const note = html`${timeline.truncated ? 'Only the newest events are shown. ' : ''}${auditLink('Filter these in the audit log', { identity: timeline.identity.address })}`;
  return html`
    ${section('identity', 'Identity', facts(timeline))}
    ${section('leases', 'Leases', leaseTable(timeline.leases, 'This identity never held a lease.'))}
    ${section('timeline', 'Timeline', eventTable(timeline.events, 'No events.'), note)}
  `;
}
