import type { IdentityView } from '../../identity/identity.js';
import type { LeaseView } from '../../leases/lease-service.js';
import type { ChainStatus } from '../../review/chain-status.js';
import type { ReviewEvent } from '../../review/reader.js';
import { chainPanel } from '../chain-panel.js';
import { auditLink, section } from '../components.js';
import { type Html, html } from '../html.js';
import { eventTable, identityTable, leaseTable } from '../tables.js';

export interface OverviewData {
  readonly chain: ChainStatus;
  readonly identities: readonly IdentityView[];
  readonly activeLeases: readonly LeaseView[];
  /** revoked and revocation-pending leases */
  readonly revokedLeases: readonly LeaseView[];
  /** identity.revoked events, newest first */
  readonly revocations: readonly ReviewEvent[];
  /** denied events, newest first */
  readonly denials: readonly ReviewEvent[];
}

const stat = (label: string, value: number, id: string): Html => html`<a class="stat" href="${`#${id}`}"><strong>${value}</strong>${label}</a>`;

export function overviewPage(data: OverviewData): Html {
  const count = (status: string) => data.identities.filter((identity) => identity.status === status).length;
  return html`
    ${chainPanel(data.chain)}
    <div class="stats">
      ${stat('active identities', count('active'), 'identities')}
      ${stat('pending identities', count('pending'), 'identities')}
      ${stat('suspended identities', count('suspended'), 'identities')}
      ${stat('revoked identities', count('revoked'), 'revocations')}
      ${stat('active leases', data.activeLeases.length, 'active-leases')}
      ${stat('revoked leases', data.revokedLeases.length, 'revoked-leases')}
      ${stat('recent denials', data.denials.length, 'denials')}
    </div>
    ${section('identities', 'Identities', identityTable(data.identities))}
    ${section('active-leases', 'Active leases', leaseTable(data.activeLeases, 'No active leases.'))}
    ${section('revoked-leases', 'Revoked leases', leaseTable(data.revokedLeases, 'No revoked leases.'), 'Including leases whose upstream revocation is still being retried (revocation-pending).')}
    ${section('revocations', 'Identity revocations', eventTable(data.revocations, 'No identity has been revoked.'), html`Newest first. ${auditLink('All revocations in the audit log', { action: 'identity.revoked' })}`)}
    ${section('denials', 'Recent denials', eventTable(data.denials, 'No denials.'), html`Newest first. ${auditLink('All denials in the audit log', { outcome: 'denied' })}`)}
  `;
}
