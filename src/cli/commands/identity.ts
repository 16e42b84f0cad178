import type { Command } from 'commander';
import type { IdentityView } from '../../identity/identity.js';
import { adminClient, commandConfig, output, withKeyStores } from '../context.js';

const line = (identity: IdentityView) =>
  `${identity.address.padEnd(32)} ${identity.status.padEnd(8)} ${identity.role.padEnd(8)} ${identity.identity_id}`;

const details = (identity: IdentityView) =>
  Object.entries(identity)
    .map(([key, value]) => `${key.padEnd(18)} ${typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)}`)
    .join('\n');

export function registerIdentityCommands(program: Command): void {
  const identity = program.command('identity').description('inspect and revoke identities (admin)');

  identity
    .command('list')
    .option('--status <status>', 'pending | active | revoked')
    .option('--json', 'print JSON')
    .action(async (options: { status?: string; json?: boolean }, command: Command) => {
      const config = commandConfig(command);
      const query = options.status ? `?status=${encodeURIComponent(options.status)}` : '';
      const { identities } = await withKeyStores(config, async (keyStores) =>
        (await adminClient(command, config, keyStores)).request<{ identities: IdentityView[] }>('GET', `/v1/admin/identities${query}`),
      );
      output(options.json, identities, () => identities.map(line).join('\n') || '(no identities)');
    });

  identity
    .command('show <address>')
    .option('--json', 'print JSON')
    .action(async (address: string, options: { json?: boolean }, command: Command) => {
      const config = commandConfig(command);
      const shown = await withKeyStores(config, async (keyStores) =>
        (await adminClient(command, config, keyStores)).request<IdentityView>('GET', `/v1/admin/identities/${encodeURIComponent(address)}`),
      );
      output(options.json, shown, () => details(shown));
    });

  identity
    .command('revoke <address>')
    .description('revoke an identity: its next request fails')
    .requiredOption('--reason <text>', 'why (recorded in the audit trail)')
    .option('--json', 'print JSON')
    .action(async (address: string, options: { reason: string; json?: boolean }, command: Command) => {
      const config = commandConfig(command);
      const revoked = await withKeyStores(config, async (keyStores) =>
        (await adminClient(command, config, keyStores)).request<IdentityView>('POST', `/v1/admin/identities/${encodeURIComponent(address)}/revoke`, {
          reason: options.reason,
        }),
      );
      output(options.json, revoked, () => `revoked ${revoked.address} at ${revoked.revoked_at}`);
    });
}
