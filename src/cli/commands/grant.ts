import { ttlSeconds } from '@tessera-broker/sdk';
import type { Command } from 'commander';
import { TesseraError } from '../../errors.js';
import type { GrantView } from '@tessera-broker/sdk/wire';
import { collect, output } from '../context.js';
import { keyValueFlags } from '../key-value-flag.js';
import { adminRequest, queryString } from '../signed-request.js';
import { formatSeconds, table } from '../table.js';

interface AddOptions {
  role?: string;
  scope?: string;
  constraint?: string[];
  requireUserClaim?: string[];
  maxTtl: string;
  defaultTtl?: string;
  json?: boolean;
}

/** An identity address, or `attr:key=value` for every identity carrying that attribute. */
function checkSubject(subject: string): string {
  if (subject.startsWith('attr:') && !/^attr:[^=]+=.+$/.test(subject)) {
    throw new TesseraError('invalid_request', `An attribute subject is attr:<key>=<value> (got "${subject}").`);
  }
  return subject;
}

/** `--constraint k=v` (repeatable, each name once) -> {k: v}; also `tessera delegate`'s. */
export const parseConstraints = (specs?: string[]) => keyValueFlags('--constraint', specs);

function roleOf(options: AddOptions): string {
  const role = options.role ?? options.scope;
  if (role === undefined || (options.role !== undefined && options.scope !== undefined)) {
    throw new TesseraError('invalid_request', 'Give exactly one of --role (postgres) or --scope (HTTP APIs).');
  }
  return role;
}

const grantLine = (g: GrantView) =>
  `${g.grant_id}: ${g.subject} may lease ${g.backend}/${g.role} (max ${formatSeconds(g.max_ttl_seconds)}, default ${formatSeconds(g.default_ttl_seconds)})`;

/** `tessera grant ...`: who may lease which backend role, and for how long (admin). */
export function registerGrantCommands(program: Command): void {
  const grant = program.command('grant').description('allow identities to lease a backend role (admin)');

  grant
    .command('add <subject> <backend>', { isDefault: true })
    .description('grant <address | attr:key=value> a role on <backend> (also: tessera grant <subject> <backend> ...)')
    .option('--role <role>', 'the backend role (postgres, openai-admin)')
    .option('--scope <preset>', 'the scope preset (stripe, openai, http), e.g. refunds:write')
    .option('--constraint <name=value>', 'a constraint of the scope, e.g. max_amount=5000 or models=gpt-4o-mini (repeatable)', collect)
    .option('--require-user-claim <name=value>', 'leases must act for a user (tessera act-for) whose token carries this claim, e.g. groups=support (repeatable)', collect)
    .requiredOption('--max-ttl <duration>', 'longest lifetime of a lease, renewals included, e.g. 1h')
    .option('--default-ttl <duration>', 'TTL when the agent asks for none')
    .option('--json', 'print JSON')
    .action(async (subject: string, backend: string, options: AddOptions, command: Command) => {
      const constraints = parseConstraints(options.constraint);
      const requiredUserClaims = keyValueFlags('--require-user-claim', options.requireUserClaim);
      const maxTtl = ttlSeconds(options.maxTtl, '--max-ttl');
      const defaultTtl = options.defaultTtl === undefined ? undefined : ttlSeconds(options.defaultTtl, '--default-ttl');
      // Checked here too so that the message names the flags, not the API's fields.
      if (defaultTtl !== undefined && defaultTtl > maxTtl) {
        throw new TesseraError('invalid_request', `--default-ttl (${options.defaultTtl}) must not exceed --max-ttl (${options.maxTtl}).`);
      }
      const body = {
        subject: checkSubject(subject),
        backend,
        role: roleOf(options),
        ...(constraints && { constraints }),
        ...(requiredUserClaims && { required_user_claims: requiredUserClaims }),
        max_ttl_seconds: maxTtl,
        ...(defaultTtl === undefined ? {} : { default_ttl_seconds: defaultTtl }),
      };
      const created = await adminRequest<GrantView>(command, 'POST', '/v1/admin/grants', body);
      output(options.json, created, () => `granted ${grantLine(created)}`);
    });

  grant
    .command('list')
    .option('--backend <name>', 'only grants on this backend')
    .option('--subject <subject>', 'only grants to this address or attr:key=value')
    .option('--json', 'print JSON')
    .action(async (options: { backend?: string; subject?: string; json?: boolean }, command: Command) => {
      const query = queryString({ backend: options.backend, subject: options.subject });
      const { grants } = await adminRequest<{ grants: GrantView[] }>(command, 'GET', `/v1/admin/grants${query}`);
      output(options.json, grants, () =>
        table(
          ['grant', 'subject', 'backend', 'role', 'max ttl', 'default ttl'],
          grants.map((g) => [g.grant_id, g.subject, g.backend, g.role, formatSeconds(g.max_ttl_seconds), formatSeconds(g.default_ttl_seconds)]),
          '(no grants)',
        ),
      );
    });

  grant
    .command('revoke <grant_id>')
    .description('delete a grant: no new leases under it')
    .option('--json', 'print JSON')
    .action(async (grantId: string, options: { json?: boolean }, command: Command) => {
      const revoked = (await adminRequest<object | undefined>(command, 'DELETE', `/v1/admin/grants/${encodeURIComponent(grantId)}`)) ?? { grant_id: grantId };
      output(options.json, revoked, () => `revoked grant ${grantId}`);
    });
}
