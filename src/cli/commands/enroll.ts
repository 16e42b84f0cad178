import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import type { IdentityView } from '../../identity/identity.js';
import { commandConfig, output } from '../context.js';
import { asIdentity } from '../signed-request.js';

interface EnrollResponse {
  identity: IdentityView;
  credential: string;
  credential_expires_at: string;
}

/** Node-side commands: run where the agent runs, signing with the agent's own key. */
export function registerAgentCommands(program: Command): void {
  program
    .command('enroll')
    .description('redeem a one-time enrollment ticket, proving possession of the identity key')
    .requiredOption('--ticket <ticket>', 'the ticket from "tessera provision" or "tessera ticket"')
    .requiredOption('--key <uri>', 'the identity key: pkcs11:... or aws-kms:...')
    .option('--credential-file <path>', 'where to keep the identity credential (0600; default <data dir>/credentials/<address>.jwt)')
    .option('--json', 'print JSON')
    .action(async (options: { ticket: string; key: string; credentialFile?: string; json?: boolean }, command: Command) => {
      const config = commandConfig(command);
      const enrolled = await asIdentity(command, options.key, (client) => client.request<EnrollResponse>('POST', '/v1/enroll', { ticket: options.ticket }));
      const file = options.credentialFile ?? join(config.dataDir, 'credentials', `${enrolled.identity.address}.jwt`);
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, `${enrolled.credential}\n`, { mode: 0o600 });
      chmodSync(file, 0o600);
      output(
        options.json,
        { identity_id: enrolled.identity.identity_id, address: enrolled.identity.address, status: enrolled.identity.status, credential_file: file, credential_expires_at: enrolled.credential_expires_at },
        () => `enrolled ${enrolled.identity.address} (${enrolled.identity.identity_id}); credential in ${file}`,
      );
    });

  program
    .command('whoami')
    .description('make an authenticated request and print who the broker says you are')
    .requiredOption('--key <uri>', 'the identity key: pkcs11:... or aws-kms:...')
    .option('--json', 'print JSON')
    .action(async (options: { key: string; json?: boolean }, command: Command) => {
      const me = await asIdentity(command, options.key, (client) => client.request<IdentityView>('GET', '/v1/whoami'));
      output(options.json, me, () => `${me.address} (${me.identity_id}) role=${me.role} status=${me.status}`);
    });
}
