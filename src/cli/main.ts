#!/usr/bin/env node
import { Command } from 'commander';

// The AWS SDK warns on every KMS command that releases after January 2027 will need Node 22; the
// pinned SDK supports Node 20 (see engines), so the notice is noise for CLI users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { registerProvisionerCommands } from '../../provisioner/commands.js';
import { BrokerRequestError } from '@tessera-broker/sdk';
import { TesseraError } from '../errors.js';
import { registerBackendCommands } from './commands/backend.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerDevCommands } from './commands/dev-kms.js';
import { registerAgentCommands } from './commands/enroll.js';
import { registerGrantCommands } from './commands/grant.js';
import { registerIdentityCommands } from './commands/identity.js';
import { registerInit } from './commands/init.js';
import { registerLeaseCommands } from './commands/lease.js';
import { registerReviewCommands } from './commands/review.js';
import { registerServe } from './commands/serve.js';

const program = new Command('tessera')
  .description('Tessera: per-agent identities in KMS/HSM and leased, short-lived credentials')
  .option('--data-dir <dir>', 'data directory (TESSERA_DATA_DIR; default ./.tessera)')
  .option('--broker <url>', 'broker URL for client commands (TESSERA_URL; default http://127.0.0.1:8700)')
  .showHelpAfterError();

registerInit(program);
registerServe(program);
registerProvisionerCommands(program);
registerAgentCommands(program);
registerIdentityCommands(program);
registerBackendCommands(program);
registerGrantCommands(program);
registerLeaseCommands(program);
registerAuditCommands(program);
registerReviewCommands(program);
registerDevCommands(program);

program.parseAsync().catch((error: unknown) => {
  if (error instanceof TesseraError || error instanceof BrokerRequestError) {
    process.stderr.write(`tessera: ${error.code}: ${error.message}\n`);
  } else {
    process.stderr.write(`tessera: ${error instanceof Error ? error.message : String(error)}\n`);
  }
  process.exitCode = 1;
});
