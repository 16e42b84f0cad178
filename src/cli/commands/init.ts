import type { Command } from 'commander';
import { initialize } from '../../init.js';
import { commandConfig, output } from '../context.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create the data directory, database, SoftHSM2 token, authority key and admin identity (idempotent)')
    .option('--keystore <kind>', 'where the authority and admin keys live: pkcs11 | kms')
    .option('--json', 'print JSON')
    .action(async (options: { keystore?: string; json?: boolean }, command: Command) => {
      const report = await initialize(commandConfig(command, { keystore: options.keystore }));
      output(options.json, report, () =>
        [
          report.created.length ? `created: ${report.created.join(', ')}` : 'already initialised; nothing created',
          `data dir:      ${report.dataDir}`,
          `database:      ${report.databaseUrl.startsWith('sqlite:') ? report.databaseUrl : 'postgres'}`,
          `key store:     ${report.keystore}`,
          `authority key: ${report.authorityKeyUri}`,
          `admin:         ${report.adminAddress} (${report.adminKeyUri})`,
        ].join('\n'),
      );
    });
}
