import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import type { IdentityView } from '../../identity/identity.js';
import { readInitState, writeInitState } from '../../config/config.js';
import { commandConfig, identityKeyUri, KEY_HELP, output } from '../context.js';
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
    .option('--key <uri>', `${KEY_HELP}; remembered for this data dir`)
    .option('--credential-file <path>', 'where to keep the identity credential (0600; default <data dir>/credentials/<address>.jwt)')
    .option('--json', 'print JSON')
    .action(async (options: { ticket: string; key?: string; credentialFile?: string; json?: boolean }, command: Command) => {
      const config = commandConfig(command);
      const keyUri = identityKeyUri(config, options.key);
      const enrolled = await asIdentity(command, keyUri, (client) => client.request<EnrollResponse>('POST', '/v1/enroll', { ticket: options.ticket }));
      // Later agent commands with this data dir sign with this key when given no --key (a URI, not a secret).
      mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
      writeInitState(config.dataDir, { ...readInitState(config.dataDir), identityKeyUri: keyUri });
      const file = options.credentialFile ?? join(config.dataDir, 'credentials', `${enrolled.identity.address}.jwt`);
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, `${enrolled.credential}\n`, { mode: 0o600 });
      chmodSync(file, 0o600);
      output(
        options.json,
        {
          identity_id: enrolled.identity.identity_id,
          address: enrolled.identity.address,
          status: enrolled.identity.status,
          key_uri: keyUri,
          credential_file: file,
          credential_expires_at: enrolled.credential_expires_at,
        },
        () =>
          `enrolled ${enrolled.identity.address} (${enrolled.identity.identity_id}); credential in ${file}\n` +
          `agent commands with data dir ${config.dataDir} now sign with this key by default (--key and TESSERA_KEY override it)`,
      );
    });

  program
    .command('whoami')
    .description('make an authenticated request and print who the broker says you are')
    .option('--key <uri>', KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (options: { key?: string; json?: boolean }, command: Command) => {
      const me = await asIdentity(command, options.key, (client) => client.request<IdentityView>('GET', '/v1/whoami'));
      output(options.json, me, () => `${me.address} (${me.identity_id}) role=${me.role} status=${me.status}`);
    });
}
