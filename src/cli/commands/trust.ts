import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { TesseraError } from '../../errors.js';
import { type IssuerRemoved, type IssuerView, type TrustIssuerRequest, USER_TOKEN_ALGORITHMS } from '@tessera-broker/sdk/wire';
import { collect, output } from '../context.js';
import { keyValueFlags } from '../key-value-flag.js';
import { adminRequest, queryString } from '../signed-request.js';
import { table } from '../table.js';

interface AddIssuerOptions {
  jwksUrl?: string;
  jwksFile?: string;
  audience: string;
  claim?: string[];
  alg?: string[];
  json?: boolean;
}

function readJwksFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TesseraError('invalid_request', `--jwks-file ${path}: ${error instanceof SyntaxError ? 'not JSON' : (error as Error).message}`, { cause: error });
  }
}

const keysOf = (issuer: IssuerView) => issuer.jwks_url ?? `static (${issuer.static_kids?.join(', ') ?? ''})`;

/** `tessera trust ...`: which identity providers' user tokens agents may present (admin). */
export function registerTrustCommands(program: Command): void {
  const trust = program.command('trust').description('trust OpenID Connect / JWT identity providers for user tokens (admin)');

  trust
    .command('add-issuer <issuer>')
    .description('trust the issuer <issuer> (its exact "iss") for user tokens naming --audience')
    .option('--jwks-url <url>', 'where the issuer publishes its keys (https; http only on loopback)')
    .option('--jwks-file <file>', 'a static JWKS file of the issuer\'s public keys, instead of --jwks-url')
    .requiredOption('--audience <aud>', 'the exact "aud" tokens must carry (this broker at the issuer)')
    .option('--claim <name=value>', 'a claim every token must carry to be accepted, e.g. email_verified=true (repeatable)', collect)
    .option('--alg <alg>', `an allowed algorithm, ${USER_TOKEN_ALGORITHMS.join(' | ')} (repeatable; default: all three)`, collect)
    .option('--json', 'print JSON')
    .action(async (issuer: string, options: AddIssuerOptions, command: Command) => {
      if ((options.jwksUrl === undefined) === (options.jwksFile === undefined)) {
        throw new TesseraError('invalid_request', 'Give exactly one of --jwks-url and --jwks-file.');
      }
      const unknownAlg = options.alg?.find((alg) => !(USER_TOKEN_ALGORITHMS as readonly string[]).includes(alg));
      if (unknownAlg !== undefined) throw new TesseraError('invalid_request', `--alg ${unknownAlg} is not allowed; choose from ${USER_TOKEN_ALGORITHMS.join(', ')}.`);
      const claims = keyValueFlags('--claim', options.claim);
      const body: TrustIssuerRequest = {
        issuer,
        audience: options.audience,
        ...(options.jwksUrl !== undefined && { jwks_url: options.jwksUrl }),
        ...(options.jwksFile !== undefined && { jwks: readJwksFile(options.jwksFile) as TrustIssuerRequest['jwks'] }),
        ...(options.alg && { algorithms: options.alg as TrustIssuerRequest['algorithms'] }),
        ...(claims && { required_claims: claims }),
      };
      const added = await adminRequest<IssuerView>(command, 'POST', '/v1/admin/trust/issuers', body);
      output(options.json, added, () => `trusted ${added.issuer} for audience ${added.audience}, keys ${keysOf(added)}`);
    });

  trust
    .command('list')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { issuers } = await adminRequest<{ issuers: IssuerView[] }>(command, 'GET', '/v1/admin/trust/issuers');
      output(options.json, issuers, () =>
        table(
          ['issuer', 'audience', 'algorithms', 'keys', 'required claims'],
          issuers.map((i) => [i.issuer, i.audience, i.algorithms.join(','), keysOf(i), Object.entries(i.required_claims).map(([k, v]) => `${k}=${v}`).join(' ')]),
          '(no trusted issuers)',
        ),
      );
    });

  trust
    .command('remove <issuer>')
    .description('stop trusting an issuer: its tokens are refused from the next request on')
    .option('--json', 'print JSON')
    .action(async (issuer: string, options: { json?: boolean }, command: Command) => {
      const removed = await adminRequest<IssuerRemoved>(command, 'DELETE', `/v1/admin/trust/issuers${queryString({ issuer })}`);
      output(options.json, removed, () => `removed trusted issuer ${issuer}`);
    });
}
