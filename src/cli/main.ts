#!/usr/bin/env node
import { readFileSync } from 'node:fs';

// The AWS SDK warns on every KMS command that releases after January 2027 will need Node 22; the
// pinned SDK supports Node 20 (see engines), so the notice is noise for CLI users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { registerProvisionerCommands } from '../../provisioner/commands.js';
import { BrokerRequestError } from '@tessera-broker/sdk';
import { TesseraError } from '../errors.js';
import { checkRequiredOptionsBeforeActions, TesseraCommand } from './command.js';
import { registerBackendCommands } from './commands/backend.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerActForCommand } from './commands/act-for.js';
import { registerDelegationCommands } from './commands/delegate.js';
import { registerDevCommands } from './commands/dev-kms.js';
import { registerAgentCommands } from './commands/enroll.js';
import { registerGrantCommands } from './commands/grant.js';
import { registerIdentityCommands } from './commands/identity.js';
import { registerInit } from './commands/init.js';
import { registerLeaseCommands } from './commands/lease.js';
import { registerReviewCommands } from './commands/review.js';
import { registerRotationCommands } from './commands/rotate.js';
import { registerRun } from './commands/run.js';
import { registerServe } from './commands/serve.js';
import { registerTrustCommands } from './commands/trust.js';

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new TesseraCommand('tessera')
  .description('Tessera: per-agent identities in KMS/HSM and leased, short-lived credentials')
  .version(version, '-V, --version', 'print the version')
  .option('--data-dir <dir>', 'data directory (default: TESSERA_DATA_DIR, else $XDG_DATA_HOME/tessera or ~/.local/share/tessera)')
  .option('--broker <url>', 'broker URL for client commands, http(s)://host:port or host:port (TESSERA_URL; default http://127.0.0.1:8700)')
  .showHelpAfterError();
checkRequiredOptionsBeforeActions(program);

registerInit(program);
registerServe(program);
registerProvisionerCommands(program);
registerAgentCommands(program);
registerIdentityCommands(program);
registerBackendCommands(program);
registerGrantCommands(program);
registerTrustCommands(program);
registerLeaseCommands(program);
registerDelegationCommands(program);
registerActForCommand(program);
registerRun(program);
registerRotationCommands(program);
registerAuditCommands(program);
registerReviewCommands(program);
registerDevCommands(program);

program.parseAsync().catch((error: unknown) => {
  if (error instanceof TesseraError || error instanceof BrokerRequestError) {
    process.stderr.write(`tessera: ${error.code}: ${error.message}${keyStoreDetail(error)}\n`);
  } else {
    process.stderr.write(`tessera: ${error instanceof Error ? error.message : String(error)}\n`);
  }
  process.exitCode = 1;
});

/**
 * The key store's own words (AWS SDK or PKCS#11: "Region is missing", "Could not load credentials
 * from any providers"), which the broker keeps out of API answers but the user at this terminal
 * needs to fix their setup. Neither carries key material or request payloads.
 */
function keyStoreDetail(error: TesseraError | BrokerRequestError): string {
  if (error.code !== 'key_store_error' && error.code !== 'key_not_found') return '';
  const cause = error.cause;
  if (!(cause instanceof Error)) return '';
  const detail = cause.message.replace(/\s+/g, ' ').trim();
  return detail === '' || error.message.includes(detail) ? '' : ` (${detail.length > 300 ? `${detail.slice(0, 300)}...` : detail})`;
}
