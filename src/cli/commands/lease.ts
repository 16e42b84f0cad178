import { type Command, Option } from 'commander';
import { TesseraError } from '../../errors.js';
import { getLease, issueLease, renewLease, revokeLease, ttlSeconds } from '@tessera-broker/sdk';
import { type BulkRevokeResponse, LEASE_STATES, type LeaseRecord, type LeaseResponse } from '@tessera-broker/sdk/wire';
import { KEY_HELP, output, reportPending } from '../context.js';
import { adminRequest, asIdentity, queryString } from '../signed-request.js';
import { details, table } from '../table.js';

const KEY_FLAGS = '--key <uri>';
const optionalTtl = (ttl: string | undefined) => (ttl === undefined ? undefined : ttlSeconds(ttl, '--ttl'));
const indent = (text: string) => text.replace(/^/gm, '  ');

/** The one place a secret is printed: the credential the agent itself asked for. */
function leaseLines(lease: LeaseResponse): string {
  const { credential, ...rest } = lease;
  return `${details(rest)}\ncredential:\n${indent(details(credential))}`;
}

/** `tessera lease ...`: node side, signed with the agent's own key. */
function registerLease(program: Command): void {
  const lease = program.command('lease').description("lease a short-lived backend credential as this node's identity");

  lease
    .command('issue <backend>', { isDefault: true })
    .description('issue a lease and print its credential (also: tessera lease <backend> ...)')
    .requiredOption('--role <role>', 'the backend role to lease')
    .option('--ttl <duration>', "lifetime, e.g. 5m (default: the grant's default TTL)")
    .option('--delegation <delegation_id>', 'lease under this delegation (default: own grant, else the one delegation that applies)')
    .option(KEY_FLAGS, KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (backend: string, options: { role: string; ttl?: string; delegation?: string; key?: string; json?: boolean }, command: Command) => {
      const ttl = optionalTtl(options.ttl); // a bad --ttl is reported before the key store opens
      const issued = await asIdentity(command, options.key, (client) => issueLease(client, backend, options.role, ttl, options.delegation));
      output(options.json, issued, () => leaseLines(issued));
    });

  lease
    .command('show <lease_id>')
    .description('show one of your leases (without its credential)')
    .option(KEY_FLAGS, KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (leaseId: string, options: { key?: string; json?: boolean }, command: Command) => {
      const shown = await asIdentity(command, options.key, (client) => getLease(client, leaseId));
      output(options.json, shown, () => details(shown));
    });

  lease
    .command('renew <lease_id>')
    .description('extend a lease (up to its grant\'s max TTL)')
    .option('--ttl <duration>', 'new lifetime from now, e.g. 5m')
    .option(KEY_FLAGS, KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (leaseId: string, options: { ttl?: string; key?: string; json?: boolean }, command: Command) => {
      const ttl = optionalTtl(options.ttl);
      const renewed = await asIdentity(command, options.key, (client) => renewLease(client, leaseId, ttl));
      output(options.json, renewed, () => `renewed ${renewed.lease_id} until ${renewed.expires_at}${renewed.renewable ? '' : ' (no further renewals)'}`);
    });

  lease
    .command('revoke <lease_id>')
    .description('revoke a lease: its credential stops working')
    .option(KEY_FLAGS, KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (leaseId: string, options: { key?: string; json?: boolean }, command: Command) => {
      const revoked = await asIdentity(command, options.key, (client) => revokeLease(client, leaseId));
      output(options.json, revoked, () => `${revoked.lease_id}: ${revoked.state}`);
      if (revoked.state === 'revocation-pending') {
        reportPending(1, [{ lease_id: revoked.lease_id, backend: revoked.backend, error: revoked.last_error ?? 'revocation in progress' }]);
      }
    });
}

/** `tessera leases ...`: every identity's leases (admin). */
function registerLeases(program: Command): void {
  const leases = program.command('leases').description('list and revoke leases (admin)');

  leases
    .command('list')
    .option('--identity <address>', "only this identity's leases")
    .option('--backend <name>', 'only leases on this backend')
    .addOption(new Option('--state <state>', 'only leases in this state').choices(LEASE_STATES))
    .option('--json', 'print JSON')
    .action(async (options: { identity?: string; backend?: string; state?: string; json?: boolean }, command: Command) => {
      const query = queryString({ identity: options.identity, backend: options.backend, state: options.state });
      const { leases: found } = await adminRequest<{ leases: LeaseRecord[] }>(command, 'GET', `/v1/admin/leases${query}`);
      output(options.json, found, () =>
        table(
          ['lease', 'identity', 'backend', 'role', 'state', 'expires'],
          found.map((l) => [l.lease_id, l.address ?? '', l.backend, l.role, l.state, l.expires_at]),
          '(no leases)',
        ),
      );
    });

  leases
    .command('revoke')
    .description("revoke every lease of an identity and/or on a backend")
    .option('--identity <address>', "this identity's leases")
    .option('--backend <name>', 'leases on this backend')
    .requiredOption('--reason <text>', 'why (recorded in the audit trail)')
    .option('--json', 'print JSON')
    .action(async (options: { identity?: string; backend?: string; reason: string; json?: boolean }, command: Command) => {
      if (options.identity === undefined && options.backend === undefined) {
        throw new TesseraError('invalid_request', 'Say which leases: --identity <address> and/or --backend <name>.');
      }
      const result = await adminRequest<BulkRevokeResponse>(command, 'POST', '/v1/admin/leases/revoke', {
        identity: options.identity,
        backend: options.backend,
        reason: options.reason,
      });
      output(options.json, result, () => bulkLine(result));
      reportPending(result.pending, result.failures);
    });

  leases
    .command('retry')
    .description('retry revocation-pending leases now, ignoring their backoff')
    .option('--lease <lease_id>', 'only this lease')
    .option('--backend <name>', 'only leases on this backend')
    .option('--json', 'print JSON')
    .action(async (options: { lease?: string; backend?: string; json?: boolean }, command: Command) => {
      const result = await adminRequest<BulkRevokeResponse>(command, 'POST', '/v1/admin/leases/retry', { lease: options.lease, backend: options.backend });
      output(options.json, result, () => bulkLine(result));
      reportPending(result.pending, result.failures);
    });
}

const bulkLine = (result: BulkRevokeResponse) =>
  `revoked ${result.revoked} lease(s)${result.pending ? `; ${result.pending} revocation-pending (retried in the background)` : ''}`;

export function registerLeaseCommands(program: Command): void {
  registerLease(program);
  registerLeases(program);
}
