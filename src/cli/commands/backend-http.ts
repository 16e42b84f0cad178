/**
 * `tessera backend add stripe|openai|http|openai-admin`: the type-specific fields of an HTTP API
 * backend. The root secret comes from a file (or TESSERA_BACKEND_SECRET), never from argv.
 */
import { readFileSync } from 'node:fs';
import { TesseraError } from '../../errors.js';

export const SECRET_ENV = 'TESSERA_BACKEND_SECRET';

export interface HttpBackendOptions {
  secretKeyFile?: string;
  apiKeyFile?: string;
  adminKeyFile?: string;
  secretFile?: string;
  upstreamUrl?: string;
  projectId?: string;
  authHeader?: string;
  authScheme?: string;
  scope?: string[];
  checkPath?: string;
}

/** Per type: the option naming the secret file, and the wire field the secret goes in. */
const SECRETS = {
  stripe: { option: 'secretKeyFile', flag: '--secret-key-file', field: 'secret_key' },
  openai: { option: 'apiKeyFile', flag: '--api-key-file', field: 'api_key' },
  'openai-admin': { option: 'adminKeyFile', flag: '--admin-key-file', field: 'admin_key' },
  http: { option: 'secretFile', flag: '--secret-file', field: 'secret' },
} as const satisfies Record<string, { option: keyof HttpBackendOptions; flag: string; field: string }>;

export const HTTP_BACKEND_TYPES = Object.keys(SECRETS) as (keyof typeof SECRETS)[];

function readSecret(type: keyof typeof SECRETS, options: HttpBackendOptions): string {
  const { option, flag } = SECRETS[type];
  const file = options[option] as string | undefined;
  if (file === undefined) {
    const fromEnv = process.env[SECRET_ENV];
    if (!fromEnv) throw new TesseraError('invalid_request', `No secret: use ${flag} <file> or ${SECRET_ENV}.`);
    return fromEnv;
  }
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new TesseraError('invalid_request', `Cannot read ${flag} ${file}: ${(error as Error).message}`);
  }
}

/** `--scope name=GET,HEAD:/prefix` (repeatable; repeating a name adds a rule) -> {name: [{methods, path_prefix}]}. */
function parseScopes(specs: string[] = []): Record<string, { methods: string[]; path_prefix: string }[]> {
  const scopes: Record<string, { methods: string[]; path_prefix: string }[]> = {};
  for (const spec of specs) {
    const match = /^([^=]+)=([A-Za-z,]+):(\/\S*)$/.exec(spec);
    if (!match) throw new TesseraError('invalid_request', `--scope expects <name>=<METHOD[,METHOD...]>:<path prefix> (got "${spec}").`);
    const [, name, methods, prefix] = match;
    (scopes[name!] ??= []).push({ methods: methods!.toUpperCase().split(','), path_prefix: prefix! });
  }
  return scopes;
}

export function httpBackendFields(type: keyof typeof SECRETS, options: HttpBackendOptions): Record<string, unknown> {
  const fields: Record<string, unknown> = { [SECRETS[type].field]: readSecret(type, options) };
  if (options.upstreamUrl !== undefined) fields.upstream_url = options.upstreamUrl;
  if (type === 'openai-admin') fields.project_id = options.projectId;
  if (type === 'http') {
    Object.assign(fields, { scopes: parseScopes(options.scope) });
    if (options.authHeader !== undefined) fields.auth_header = options.authHeader;
    if (options.authScheme !== undefined) fields.auth_scheme = options.authScheme;
    if (options.checkPath !== undefined) fields.check_path = options.checkPath;
  }
  return fields;
}
