import { ttlSeconds } from '@tessera-broker/sdk';
import { type Command, Option } from 'commander';
import { adminClient, collect, commandConfig, output, withKeyStores } from '../src/cli/context.js';
import { TesseraError } from '../src/errors.js';
import { issueTicket, PROVISION_ROLES, provisionAgent, type ProvisionRole, type TicketResponse } from './provision.js';

function parseAttributes(pairs: string[]): Record<string, string> {
  return Object.fromEntries(
    pairs.map((pair) => {
      const separator = pair.indexOf('=');
      if (separator <= 0) throw new TesseraError('invalid_request', `--attr expects key=value (got "${pair}").`);
      return [pair.slice(0, separator), pair.slice(separator + 1)];
    }),
  );
}

const optionalSeconds = (text: string | undefined, flag: string) => (text === undefined ? undefined : ttlSeconds(text, flag));

const ticketLines = (ticket: TicketResponse) =>
  [`ticket:      ${ticket.ticket}`, `expires at:  ${ticket.ticket_expires_at}`, '(one use; hand it to the node that runs the agent)'].join('\n');

/** The platform team's commands: provision agents and (re)issue their enrollment tickets. */
export function registerProvisionerCommands(program: Command): void {
  program
    .command('provision <address>')
    .description("generate an agent's (or reviewer's) signing key in KMS/HSM, register it and issue a one-time enrollment ticket")
    .option('--keystore <kind>', 'pkcs11 | kms (default: TESSERA_KEYSTORE or the one chosen at init)')
    .option('--attr <key=value>', 'identity attribute (repeatable)', collect, [])
    .option('--ticket-ttl <duration>', 'ticket lifetime, e.g. 10m (default TESSERA_TICKET_TTL)')
    .addOption(new Option('--role <role>', 'agent, or reviewer: reads the review page and audit log, changes nothing').choices(PROVISION_ROLES).default('agent'))
    .option('--json', 'print JSON')
    .action(async (address: string, options: { keystore?: string; attr: string[]; ticketTtl?: string; role: ProvisionRole; json?: boolean }, command: Command) => {
      const config = commandConfig(command, { keystore: options.keystore });
      const request = { address, attributes: parseAttributes(options.attr), ticketTtlSeconds: optionalSeconds(options.ticketTtl, '--ticket-ttl'), role: options.role };
      const result = await withKeyStores(config, async (keyStores) =>
        provisionAgent(await adminClient(command, config, keyStores), await keyStores.get(config.keystore), request),
      );
      output(options.json, result, () =>
        [`provisioned ${result.address}`, `identity id: ${result.identity_id}`, `key:         ${result.key_uri}`, ticketLines(result)].join('\n'),
      );
    });

  program
    .command('ticket <address>')
    .description('issue a new one-time enrollment ticket for an existing identity')
    .option('--ttl <duration>', 'ticket lifetime, e.g. 10m')
    .option('--json', 'print JSON')
    .action(async (address: string, options: { ttl?: string; json?: boolean }, command: Command) => {
      const config = commandConfig(command);
      const ticket = await withKeyStores(config, async (keyStores) =>
        issueTicket(await adminClient(command, config, keyStores), address, optionalSeconds(options.ttl, '--ttl')),
      );
      output(options.json, ticket, () => ticketLines(ticket));
    });
}
