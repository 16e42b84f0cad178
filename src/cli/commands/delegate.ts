import type { Command } from 'commander';
import { Option } from 'commander';
import { createDelegation, getDelegation, revokeDelegation, ttlSeconds } from '@tessera-broker/sdk';
import type { DelegationDetail, DelegationList, DelegationView, RevokeDelegationResponse } from '@tessera-broker/sdk/wire';
import { collect, KEY_HELP, output } from '../context.js';
import { adminRequest, asIdentity, queryString } from '../signed-request.js';
import { details, table } from '../table.js';
import { parseConstraints } from './grant.js';

const KEY_FLAGS = '--key <uri>';

/** One line per delegation (also `tessera identity show`). */
export const delegationTable = (delegations: readonly DelegationView[]) =>
  table(
    ['delegation', 'delegator', 'delegatee', 'backend', 'role', 'depth', 'status', 'expires'],
    delegations.map((d) => [d.delegation_id, d.delegator ?? d.delegator_user?.sub ?? '', d.delegatee ?? d.delegatee_identity_id, d.backend, d.role, String(d.depth), d.status, d.expires_at]),
    '(no delegations)',
  );

const detailLines = (shown: DelegationDetail) =>
  [details(shown.delegation), '', 'chain (root first):', delegationTable(shown.chain), '', `evidence: ${JSON.stringify(shown.evidence)}`].join('\n');

const revokedLine = (revoked: RevokeDelegationResponse) =>
  `revoked ${revoked.delegation_id}: ${revoked.delegations_revoked} delegation(s), ${revoked.leases.revoked} lease(s)${revoked.leases.pending ? `; ${revoked.leases.pending} revocation-pending (retried in the background)` : ''}`;

/**
 * `tessera delegate`: an agent hands part of its authority to a sub-agent, signed with its own key.
 * `tessera delegations`: list (admin), show and revoke (admin, or with --key an agent in the chain).
 */
export function registerDelegationCommands(program: Command): void {
  program
    .command('delegate <sub-agent>')
    .description("delegate part of this node's lease authority to another enrolled agent (only narrows: docs/PROTOCOL.md §12)")
    .requiredOption('--backend <name>', 'the backend')
    .requiredOption('--role <role>', 'the role or scope (one the delegator may lease)')
    .option('--constraint <name=value>', 'a tighter constraint, e.g. max_amount=1000 (repeatable; default: the delegator\'s own)', collect)
    .requiredOption('--ttl <duration>', 'how long the delegation lasts, e.g. 30m (not past the delegation it is made under)')
    .requiredOption('--purpose <text>', 'why (recorded with the delegation)')
    .option('--parent <delegation_id>', 'delegate from this delegation received (default: own grant, else the one delegation that applies)')
    .option(KEY_FLAGS, KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (delegatee: string, options: { backend: string; role: string; constraint?: string[]; ttl: string; purpose: string; parent?: string; key?: string; json?: boolean }, command: Command) => {
      const ttl = ttlSeconds(options.ttl, '--ttl');
      const constraints = parseConstraints(options.constraint);
      const created = await asIdentity(command, options.key, (client) =>
        createDelegation(client, {
          delegatee,
          backend: options.backend,
          role: options.role,
          ttl_seconds: ttl,
          purpose: options.purpose,
          ...(constraints && { constraints }),
          ...(options.parent !== undefined && { parent: options.parent }),
        }),
      );
      output(options.json, created, () => details(created));
    });

  const delegations = program.command('delegations').description('list, show and revoke delegations');

  delegations
    .command('list')
    .description('every delegation (admin); with --key, those this agent gave and received')
    .option('--delegator <address>', 'only delegations given by this identity (admin)')
    .option('--delegatee <address>', 'only delegations received by this identity (admin)')
    .addOption(new Option('--status <status>', 'only delegations in this state (admin)').choices(['active', 'revoked']))
    .option(KEY_FLAGS, 'list as this agent instead of the admin')
    .option('--json', 'print JSON')
    .action(async (options: { delegator?: string; delegatee?: string; status?: string; key?: string; json?: boolean }, command: Command) => {
      const { delegations: found } =
        options.key !== undefined
          ? await asIdentity(command, options.key, (client) => client.request<DelegationList>('GET', '/v1/delegations'))
          : await adminRequest<DelegationList>(command, 'GET', `/v1/admin/delegations${queryString({ delegator: options.delegator, delegatee: options.delegatee, status: options.status })}`);
      output(options.json, found, () => delegationTable(found));
    });

  delegations
    .command('show <delegation_id>')
    .description('a delegation, its chain and the delegator\'s stored evidence')
    .option(KEY_FLAGS, 'as this agent (one in the chain) instead of the admin')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { key?: string; json?: boolean }, command: Command) => {
      const shown =
        options.key !== undefined
          ? await asIdentity(command, options.key, (client) => getDelegation(client, id))
          : await adminRequest<DelegationDetail>(command, 'GET', `/v1/delegations/${encodeURIComponent(id)}`);
      output(options.json, shown, () => detailLines(shown));
    });

  delegations
    .command('revoke <delegation_id>')
    .description('revoke a delegation, every delegation below it and every lease obtained through them')
    .requiredOption('--reason <text>', 'why (recorded in the audit trail)')
    .option(KEY_FLAGS, 'as this agent (one in the chain) instead of the admin')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { reason: string; key?: string; json?: boolean }, command: Command) => {
      const revoked =
        options.key !== undefined
          ? await asIdentity(command, options.key, (client) => revokeDelegation(client, id, options.reason))
          : await adminRequest<RevokeDelegationResponse>(command, 'POST', `/v1/delegations/${encodeURIComponent(id)}/revoke`, { reason: options.reason });
      output(options.json, revoked, () => revokedLine(revoked));
      if (revoked.leases.pending > 0) process.exitCode = 3;
    });
}
