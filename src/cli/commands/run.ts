import { type Command, Option } from 'commander';
import { createClient } from '@tessera-broker/sdk';
import { brokerUrl, collect, commandConfig, identityKeyUri, KEY_HELP, withKeyStores } from '../context.js';
import { LEASE_SPEC_SYNTAX, parseLeaseSpec } from '../run/lease-spec.js';
import { ON_LEASE_LOST, type OnLeaseLost, runWithLeases } from '../run/supervisor.js';

const HELP = `
The command gets each lease's credential in its environment:
  postgres             DATABASE_URL, PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD
  openai, openai-admin OPENAI_BASE_URL (with /v1, as the official clients expect), OPENAI_API_KEY
  stripe               STRIPE_API_KEY, STRIPE_API_BASE
  http                 <BACKEND>_BASE_URL, <BACKEND>_API_KEY (backend name upper-cased, - as _)
With NAME=, every variable of that lease is prefixed NAME_ (e.g. REPORTS_DATABASE_URL); two leases
that would set the same variable need names.

Requests are signed with a session key the identity key certifies every ~10 minutes
(TESSERA_SESSIONS=off: every request with the identity key). Each lease is renewed two thirds into its TTL. A lease that cannot be renewed is reported here
and, with --on-lease-lost term, the command gets SIGTERM. SIGINT, SIGTERM, SIGHUP and SIGQUIT are
forwarded to the command's process group. When the command exits, every lease is revoked and
tessera exits with the command's status (128+n when it was killed by signal n; 127 when it cannot
be found). If a --lease is refused, the others are revoked and the command is not started.

Examples:
  tessera run --lease orders-db:readonly:15m -- psql -c 'SELECT count(*) FROM orders'
  tessera run --lease llm:chat --lease PAY=payments:refunds:write -- python3 agent.py`;

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a command with leased credentials in its environment; revoke them when it exits')
    .argument('<command>', 'the command to run (after --)')
    .argument('[args...]', 'its arguments')
    .requiredOption('--lease <spec>', `a lease to take, ${LEASE_SPEC_SYNTAX} (repeatable); ttl e.g. 15m, default: the grant's`, collect)
    .option('--key <uri>', KEY_HELP)
    .option('--clean-env', "start the command with only the lease variables and PATH, not tessera's environment")
    .addOption(new Option('--on-lease-lost <action>', 'when a lease cannot be renewed: SIGTERM the command, or only report it').choices(ON_LEASE_LOST).default('term'))
    .addHelpText('after', HELP)
    .action(async (command: string, args: string[], options: { lease: string[]; key?: string; cleanEnv?: boolean; onLeaseLost: OnLeaseLost }, cmd: Command) => {
      const leases = options.lease.map(parseLeaseSpec);
      const config = commandConfig(cmd);
      process.exitCode = await withKeyStores(config, async (keyStores) => {
        const client = await createClient({ broker: brokerUrl(cmd, config), key: await keyStores.signer(identityKeyUri(config, options.key)) });
        try {
          return await runWithLeases(client, { leases, command, args, cleanEnv: options.cleanEnv ?? false, onLeaseLost: options.onLeaseLost });
        } finally {
          await client.close();
        }
      });
    });
}
