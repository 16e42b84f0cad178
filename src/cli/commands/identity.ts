import type { Command } from 'commander';
import type { IdentityView } from '../../identity/identity.js';
import type { IdentityTimeline } from '../../review/reader.js';
import type { BulkRevokeResponse } from '@tessera-broker/sdk/wire';
import { eventTable } from '../audit-table.js';
import { output, reportPending } from '../context.js';
import { REVIEWER_KEY_FLAGS, REVIEWER_KEY_HELP, reviewerRequest } from '../review-client.js';
import { adminRequest, queryString } from '../signed-request.js';
import { table } from '../table.js';
import { registerIdentityRotate } from './rotate.js';
import { delegationTable } from './delegate.js';

const line = (identity: IdentityView) =>
  `${identity.address.padEnd(32)} ${identity.status.padEnd(8)} ${identity.role.padEnd(8)} ${identity.identity_id}`;

const timelineLines = ({ identity, leases, delegations, events, truncated }: IdentityTimeline) =>
  [
    details(identity),
    '',
    'leases:',
    table(['lease', 'backend', 'role', 'state', 'issued', 'revoked', 'reason'], leases.map((l) => [l.lease_id, l.backend, l.role, l.state, l.issued_at ?? '', l.revoked_at ?? '', l.revocation_reason ?? '']), '(no leases)'),
    '',
    'delegations given:',
    delegationTable(delegations.given),
    '',
    'delegations received:',
    delegationTable(delegations.received),
    '',
    `timeline${truncated ? ' (newest events only)' : ''}:`,
    eventTable(events),
  ].join('\n');

const details = (identity: IdentityView) =>
  Object.entries(identity)
    .map(([key, value]) => `${key.padEnd(18)} ${typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)}`)
    .join('\n');

export function registerIdentityCommands(program: Command): void {
  const identity = program.command('identity').description('inspect, rotate and revoke identities (admin)');

  identity
    .command('list')
    .option('--status <status>', 'pending | active | revoked')
    .option('--json', 'print JSON')
    .action(async (options: { status?: string; json?: boolean }, command: Command) => {
      const { identities } = await adminRequest<{ identities: IdentityView[] }>(command, 'GET', `/v1/admin/identities${queryString({ status: options.status })}`);
      output(options.json, identities, () => identities.map(line).join('\n') || '(no identities)');
    });

  identity
    .command('show <address>')
    .description("an identity and its timeline: provisioned, tickets, enrollment, leases, denials, revocation")
    .option(REVIEWER_KEY_FLAGS, REVIEWER_KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (address: string, options: { key?: string; json?: boolean }, command: Command) => {
      const shown = await reviewerRequest<IdentityTimeline>(command, options.key, 'GET', `/v1/review/identities/${encodeURIComponent(address)}/timeline`);
      // JSON stays the identity (as before) plus its leases and timeline.
      output(options.json, { ...shown.identity, leases: shown.leases, delegations: shown.delegations, timeline: shown.events, truncated: shown.truncated }, () => timelineLines(shown));
    });

  registerIdentityRotate(identity);

  identity
    .command('revoke <address>')
    .description('revoke an identity and every lease it holds: its next request fails')
    .requiredOption('--reason <text>', 'why (recorded in the audit trail)')
    .option('--json', 'print JSON')
    .action(async (address: string, options: { reason: string; json?: boolean }, command: Command) => {
      const revoked = await adminRequest<{ identity: IdentityView; leases: BulkRevokeResponse }>(
        command,
        'POST',
        `/v1/admin/identities/${encodeURIComponent(address)}/revoke`,
        { reason: options.reason },
      );
      const { identity: shown, leases } = revoked;
      // JSON stays the identity (as before) plus the lease counts.
      output(options.json, { ...shown, leases }, () =>
        [`revoked ${shown.address} at ${shown.revoked_at}`, `leases revoked: ${leases.revoked}, still revoking (retried): ${leases.pending}`].join('\n'),
      );
      reportPending(leases.pending, leases.failures);
    });

  identity
    .command('reinstate <address>')
    .description('lift a clone suspension (identity.clone_suspected) once one copy of the agent runs: its next session works')
    .requiredOption('--reason <text>', 'why (recorded in the audit trail)')
    .option('--json', 'print JSON')
    .action(async (address: string, options: { reason: string; json?: boolean }, command: Command) => {
      const shown = await adminRequest<IdentityView>(command, 'POST', `/v1/admin/identities/${encodeURIComponent(address)}/reinstate`, { reason: options.reason });
      output(options.json, shown, () => `reinstated ${shown.address} (status ${shown.status})`);
    });
}
