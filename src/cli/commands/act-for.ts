import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createUserDelegation, ttlSeconds } from '@tessera-broker/sdk';
import { TesseraError } from '../../errors.js';
import { collect, KEY_HELP, output } from '../context.js';
import { asIdentity } from '../signed-request.js';
import { details } from '../table.js';
import { parseConstraints } from './grant.js';

interface ActForOptions {
  userTokenFile: string;
  backend: string;
  role: string;
  constraint?: string[];
  ttl: string;
  purpose: string;
  key?: string;
  json?: boolean;
}

/** The token from a file (never a flag: argv is visible to every user of the host in `ps`). */
function readUserToken(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new TesseraError('invalid_request', `--user-token-file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** `tessera act-for`: this agent acts for a user, on the user's token and its own key (docs/PROTOCOL.md §13.3). */
export function registerActForCommand(program: Command): void {
  program
    .command('act-for')
    .description("act for a user: the user's token (from a trusted issuer) plus this agent's key -> a delegation rooted at the user")
    .requiredOption('--user-token-file <file>', "a file holding the user's ID token or JWT access token")
    .requiredOption('--backend <name>', 'the backend')
    .requiredOption('--role <role>', 'the role or scope (one this agent may lease)')
    .option('--constraint <name=value>', "a tighter constraint (repeatable; default: the agent grant's own)", collect)
    .requiredOption('--ttl <duration>', "how long, e.g. 30m (capped at the token's exp)")
    .requiredOption('--purpose <text>', 'why (recorded with the delegation)')
    .option('--key <uri>', KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (options: ActForOptions, command: Command) => {
      const ttl = ttlSeconds(options.ttl, '--ttl');
      const constraints = parseConstraints(options.constraint);
      const token = readUserToken(options.userTokenFile);
      const created = await asIdentity(command, options.key, (client) =>
        createUserDelegation(client, { token, backend: options.backend, role: options.role, ttl_seconds: ttl, purpose: options.purpose, ...(constraints && { constraints }) }),
      );
      output(options.json, created, () => details(created));
    });
}
