import { readFileSync } from 'node:fs';
import { Argument, type Command } from 'commander';
import { TesseraError } from '../../errors.js';
import type { BackendView } from '@tessera-broker/sdk/wire';
import { collect, output } from '../context.js';
import { adminRequest } from '../signed-request.js';
import { details, table } from '../table.js';
import { HTTP_BACKEND_TYPES, httpBackendFields, type HttpBackendOptions, SECRET_ENV } from './backend-http.js';

const CONNECTION_URL_ENV = 'TESSERA_BACKEND_CONNECTION_URL';

interface AddOptions extends HttpBackendOptions {
  connectionUrl?: string;
  connectionUrlFile?: string;
  role?: string[];
  json?: boolean;
}

/** The admin DSN is the backend's root secret: from a file or the environment, argv only with a warning. */
function connectionUrl(options: AddOptions): string {
  if (options.connectionUrl !== undefined && options.connectionUrlFile !== undefined) {
    throw new TesseraError('invalid_request', 'Give either --connection-url or --connection-url-file, not both.');
  }
  let url: string | undefined;
  if (options.connectionUrlFile !== undefined) {
    try {
      url = readFileSync(options.connectionUrlFile, 'utf8').trim();
    } catch (error) {
      throw new TesseraError('invalid_request', `Cannot read --connection-url-file ${options.connectionUrlFile}: ${(error as Error).message}`);
    }
  } else if (options.connectionUrl !== undefined) {
    process.stderr.write(
      `tessera: warning: a connection URL on the command line is visible to other users (ps) and in shell history; prefer --connection-url-file or ${CONNECTION_URL_ENV}\n`,
    );
    url = options.connectionUrl;
  } else {
    url = process.env[CONNECTION_URL_ENV];
  }
  if (!url) throw new TesseraError('invalid_request', `No connection URL: use --connection-url-file <file>, ${CONNECTION_URL_ENV} or --connection-url.`);
  return url;
}

/** `--role name=SQL; SQL; ...` -> { name: { creation_statements } }. Statements are split at every ';'. */
function parseRoles(specs: string[] = []): Record<string, { creation_statements: string[] }> | undefined {
  if (specs.length === 0) return undefined;
  const roles: Record<string, { creation_statements: string[] }> = {};
  for (const spec of specs) {
    const separator = spec.indexOf('=');
    const name = spec.slice(0, Math.max(separator, 0)).trim();
    const statements = spec.slice(separator + 1).split(';').map((s) => s.trim()).filter(Boolean);
    if (separator <= 0 || !name || statements.length === 0) {
      throw new TesseraError('invalid_request', `--role expects <name>=<SQL>[; <SQL>...] (got "${spec}").`);
    }
    if (Object.hasOwn(roles, name)) throw new TesseraError('invalid_request', `--role ${name} is given twice.`);
    roles[name] = { creation_statements: statements };
  }
  return roles;
}

const backendPath = (name: string) => `/v1/admin/backends/${encodeURIComponent(name)}`;

/** `tessera backend ...`: the upstream systems leases are minted on (admin). */
export function registerBackendCommands(program: Command): void {
  const backend = program.command('backend').description('register and inspect credential backends (admin)');

  backend
    .command('add')
    .description(
      `register a backend; its root secret is read from a file (postgres: --connection-url-file or ${CONNECTION_URL_ENV}; others: the type's key file or ${SECRET_ENV})`,
    )
    .addArgument(new Argument('<type>', 'backend type').choices(['postgres', ...HTTP_BACKEND_TYPES]))
    .argument('<name>', 'the name grants and leases refer to')
    .option('--connection-url-file <file>', 'file holding the admin connection URL (postgres://user:password@host:port/db)')
    .option('--connection-url <dsn>', 'the admin connection URL itself (visible in ps; prefer the file or the environment)')
    .option('--role <name=SQL; SQL; ...>', 'a role and its creation statements (repeatable; default: the readonly and readwrite roles)', collect)
    .option('--secret-key-file <file>', 'stripe: file holding the secret key')
    .option('--api-key-file <file>', 'openai: file holding the API key')
    .option('--admin-key-file <file>', 'openai-admin: file holding the OpenAI admin key')
    .option('--secret-file <file>', 'http: file holding the API secret')
    .option('--upstream-url <url>', 'HTTP APIs: where to send requests (default: the real API; required for http)')
    .option('--project-id <id>', 'openai-admin: the project service accounts are created in')
    .option('--auth-header <name>', 'http: header carrying the secret upstream (default: authorization)')
    .option('--auth-scheme <scheme>', 'http: scheme before the secret, "" for none (default: Bearer)')
    .option('--scope <name=METHODS:/prefix>', 'http: a scope rule, e.g. reader=GET,HEAD:/v1/items (repeatable)', collect)
    .option('--check-path <path>', 'http: a GET path that must answer 2xx with the secret before the backend is saved')
    .option('--json', 'print JSON')
    .action(async (type: string, name: string, options: AddOptions, command: Command) => {
      const fields =
        type === 'postgres'
          ? { connection_url: connectionUrl(options), roles: parseRoles(options.role) }
          : httpBackendFields(type as (typeof HTTP_BACKEND_TYPES)[number], options);
      const body = { name, type, ...fields };
      const added = await adminRequest<BackendView>(command, 'POST', '/v1/admin/backends', body);
      output(options.json, added, () => `added ${added.type} backend ${added.name} (roles: ${added.roles.join(', ')})`);
    });

  backend
    .command('list')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { backends } = await adminRequest<{ backends: BackendView[] }>(command, 'GET', '/v1/admin/backends');
      output(options.json, backends, () =>
        table(['name', 'type', 'roles', 'created'], backends.map((b) => [b.name, b.type, b.roles.join(','), b.created_at]), '(no backends)'),
      );
    });

  backend
    .command('show <name>')
    .option('--json', 'print JSON')
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      const shown = await adminRequest<BackendView>(command, 'GET', backendPath(name));
      output(options.json, shown, () => details(shown));
    });

  backend
    .command('check <name>')
    .description('prove the stored admin credentials still hold every privilege leases need (postgres: a probe lease end to end)')
    .option('--json', 'print JSON')
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      const checked = await adminRequest<BackendView>(command, 'POST', `${backendPath(name)}/check`);
      output(options.json, checked, () => `backend ${checked.name}: ok`);
    });

  backend
    .command('remove <name>')
    .description('remove a backend')
    .option('--json', 'print JSON')
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      const removed = (await adminRequest<object | undefined>(command, 'DELETE', backendPath(name))) ?? { name };
      output(options.json, removed, () => `removed backend ${name}`);
    });
}
