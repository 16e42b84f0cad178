/**
 * PostgreSQL backend: each lease is its own LOGIN role with a random password and VALID UNTIL set
 * to the lease expiry, created from the admin DSN (the root secret) and dropped on revoke.
 *
 * Role statements are SQL templates. PostgreSQL cannot bind parameters in utility statements
 * (CREATE ROLE, GRANT), so placeholders are substituted as quoted identifiers/literals in a single
 * pass; a value can never be read as SQL. Several statements are sent as one simple-protocol query,
 * which PostgreSQL runs as one implicit transaction: one round-trip per mint, all or nothing.
 */
import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import { TesseraError } from '../errors.js';
import {
  BackendError,
  type CredentialBackend,
  type CredentialPlan,
  type IssuedCredential,
  type MintRequest,
  type RevocationHandle,
} from './credential-backend.js';

export interface PostgresRoleConfig {
  /**
   * Placeholders: {{name}}, {{password}}, {{expiration}}, {{database}}. {{password}} expands to the
   * SCRAM-SHA-256 verifier of the generated password, which PostgreSQL stores as given.
   */
  readonly creationStatements: readonly string[];
  /** Placeholders: {{name}}, {{database}}. Replaces the default lock-out/terminate/drop sequence. */
  readonly revocationStatements?: readonly string[];
  /** Placeholders: {{name}}, {{expiration}}, {{database}}. Default: ALTER ROLE ... VALID UNTIL. */
  readonly renewStatements?: readonly string[];
}

export interface PostgresBackendConfig {
  /** Admin DSN (postgres://user:password@host:port/db). A secret: it never appears in logs or errors. */
  readonly connectionUrl: string;
  readonly roles: Readonly<Record<string, PostgresRoleConfig>>;
}

/**
 * No per-role GRANT CONNECT ON DATABASE / USAGE ON SCHEMA public: PUBLIC holds both by default, and
 * pg_database and pg_namespace rows have no TOAST, so one ACL entry per live lease fails with "row
 * is too big" at about a thousand leases. Where an operator revoked them from PUBLIC, a custom role
 * grants them (or membership in a group role that has them).
 */
export const DEFAULT_ROLES = {
  readonly: {
    creationStatements: [
      'CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}',
      'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{name}}',
    ],
  },
  readwrite: {
    creationStatements: [
      'CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}',
      'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {{name}}',
      'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {{name}}',
    ],
  },
} as const satisfies Record<string, PostgresRoleConfig>;

/**
 * Concurrent GRANTs/REVOKEs on one object (a table, the database) rewrite the same ACL row without
 * locking it and fail with "tuple concurrently updated". Every batch takes this advisory lock, so
 * batches queue instead; it is released at commit. A leading CREATE ROLE runs before the lock: it
 * only inserts its own row, and with a SCRAM password it costs milliseconds of server CPU (the
 * server checks the verifier against the empty password) that should not be serialised.
 */
const CATALOG_LOCK = 'SELECT pg_advisory_xact_lock(7304419821736620081)';
const CREATE_ROLE = /^\s*CREATE\s+(ROLE|USER)\b/i;

const DEFAULT_RENEW = ['ALTER ROLE {{name}} VALID UNTIL {{expiration}}'];

type Placeholder = 'name' | 'password' | 'expiration' | 'database';
type Values = Partial<Record<Placeholder, string>>;

const PLACEHOLDER = /\{\{\s*(\w+)\s*\}\}/g;
const ALLOWED: Record<'creationStatements' | 'revocationStatements' | 'renewStatements', readonly Placeholder[]> = {
  creationStatements: ['name', 'password', 'expiration', 'database'],
  revocationStatements: ['name', 'database'],
  renewStatements: ['name', 'expiration', 'database'],
};
const IDENTIFIERS: ReadonlySet<Placeholder> = new Set(['name', 'database']);

/** Substitutes every placeholder in one pass, so a value containing "{{...}}" is never expanded. */
function render(statements: readonly string[], values: Values): string[] {
  return statements.map((statement) =>
    statement.replace(PLACEHOLDER, (_, key: string) => {
      const value = values[key as Placeholder];
      if (value === undefined) throw new TesseraError('config_invalid', `postgres backend: no value for {{${key}}}`);
      return IDENTIFIERS.has(key as Placeholder) ? pg.escapeIdentifier(value) : pg.escapeLiteral(value);
    }),
  );
}

// SQLSTATE classes/codes worth retrying: connection exceptions, insufficient resources (e.g. too
// many connections), server shutdown/startup, cancellation by statement_timeout, lock and
// serialization conflicts, and I/O errors.
const RETRYABLE_SQLSTATE = /^(08|53|57P0[1-4]|57014|40001|40P01|55P03|58)/;
const RETRYABLE_NODE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
]);
// node-postgres reports a dropped socket or a connect timeout as a plain Error without a code;
// "tuple concurrently updated" (XX000) comes from DDL racing outside Tessera's lock.
const RETRYABLE_MESSAGE =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|tuple concurrently updated/i;
const UNDEFINED_OBJECT = '42704';
const DUPLICATE_OBJECT = '42710';

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

const pbkdf2Async = promisify(pbkdf2);
/**
 * PBKDF2 stretching protects guessable passwords; ours are 256 random bits, which no number of
 * iterations makes harder to guess. PostgreSQL's default (4096) would cost ~1 ms of broker CPU per
 * lease and the same again in every agent's login, for no gain.
 */
const SCRAM_ITERATIONS = 256;

/**
 * The SCRAM-SHA-256 verifier PostgreSQL would store for `password` (RFC 5802/7677). Sending the
 * verifier keeps the plaintext out of the server and its statement log, and spares the server one
 * of its two PBKDF2 runs per CREATE ROLE. `password` is base64url, so SASLprep leaves it unchanged.
 */
async function scramVerifier(password: string): Promise<string> {
  const salt = randomBytes(16);
  const salted = await pbkdf2Async(password, salt, SCRAM_ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest('base64');
  const serverKey = createHmac('sha256', salted).update('Server Key').digest('base64');
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${salt.toString('base64')}$${storedKey}:${serverKey}`;
}

/** Role names are limited to 63 bytes; slug + 16 hex chars of the lease id hash stays well below. */
function usernameFor(role: string, leaseId: string): string {
  const slug = role.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 24) || 'role';
  const suffix = createHash('sha256').update(leaseId).digest('hex').slice(0, 16);
  return `tessera_${slug}_${suffix}`;
}

function handleString(revocation: RevocationHandle, key: string): string {
  const value = revocation[key];
  if (typeof value !== 'string' || value === '') {
    throw new BackendError(`postgres backend: revocation handle has no ${key}`, false);
  }
  return value;
}

export class PostgresBackend implements CredentialBackend {
  readonly type = 'postgres';
  readonly #roles: Readonly<Record<string, PostgresRoleConfig>>;
  readonly #pool: pg.Pool;
  readonly #host: string;
  readonly #port: number;
  readonly #database: string;
  /** Strings that must never leave this class: the admin password and DSN. */
  readonly #secrets: string[];

  constructor(config: PostgresBackendConfig) {
    // pg's own parser (via an unconnected client) decides where the pool connects, so the
    // credential returned to agents names the same host, port and database.
    let target: pg.Client;
    try {
      target = new pg.Client({ connectionString: config.connectionUrl });
    } catch {
      throw new TesseraError('config_invalid', 'postgres backend: connectionUrl is not a valid connection string');
    }
    this.#host = target.host;
    this.#port = target.port;
    this.#database = target.database ?? target.user ?? 'postgres';
    this.#secrets = [config.connectionUrl, target.password ?? '', rawPassword(config.connectionUrl)].filter((s) => s !== '');

    for (const [name, role] of Object.entries(config.roles)) validateRoleConfig(name, role);
    this.#roles = config.roles;

    this.#pool = new pg.Pool({
      connectionString: config.connectionUrl,
      max: 10,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      // A stuck lock or server surfaces as a retryable 57014 instead of a hung lease.
      statement_timeout: 30_000,
      application_name: 'tessera',
    });
    // Idle clients die when the server restarts; the pool discards them. Without a listener the
    // 'error' event would crash the process.
    this.#pool.on('error', () => undefined);
  }

  validateRole(role: string): void {
    if (!Object.hasOwn(this.#roles, role)) throw new TesseraError('invalid_request', `unknown role "${role}" for postgres backend`);
  }

  plan(request: MintRequest): CredentialPlan {
    this.validateRole(request.role);
    return { revocation: { username: usernameFor(request.role, request.leaseId), role: request.role } };
  }

  async mint(request: MintRequest, plan: CredentialPlan): Promise<IssuedCredential> {
    this.validateRole(request.role);
    const username = handleString(plan.revocation, 'username');
    const password = randomBytes(32).toString('base64url');
    const verifier = await scramVerifier(password);
    const statements = render(this.#roles[request.role]!.creationStatements, {
      name: username,
      password: verifier,
      expiration: request.expiresAt.toISOString(),
      database: this.#database,
    });
    try {
      await this.#execute(statements);
    } catch (error) {
      if (errorCode(error) === DUPLICATE_OBJECT) {
        // Only a retried mint hits this (the name is unique per lease); the first attempt may have
        // committed with a password nobody knows, so fail and let the lease be revoked.
        throw new BackendError(`postgres backend: role ${username} already exists`, false);
      }
      throw this.#backendError('mint', error, [password, verifier]);
    }
    return { host: this.#host, port: this.#port, database: this.#database, username, password };
  }

  async renew(revocation: RevocationHandle, expiresAt: Date): Promise<void> {
    const username = handleString(revocation, 'username');
    const statements = this.#roleConfig(revocation)?.renewStatements ?? DEFAULT_RENEW;
    try {
      await this.#execute(render(statements, { name: username, expiration: expiresAt.toISOString(), database: this.#database }));
    } catch (error) {
      if (errorCode(error) === UNDEFINED_OBJECT) {
        throw new BackendError(`postgres backend: role ${username} no longer exists`, false);
      }
      throw this.#backendError('renew', error);
    }
  }

  async revoke(revocation: RevocationHandle): Promise<void> {
    const username = handleString(revocation, 'username');
    const values = { name: username, database: this.#database };
    const custom = this.#roleConfig(revocation)?.revocationStatements;
    // The default is two steps: NOLOGIN commits first so no new session can start while open ones
    // are terminated; then ownership moves to the admin, grants go and the role is dropped.
    const steps = custom
      ? [render(custom, values)]
      : [
          render(['ALTER ROLE {{name}} NOLOGIN'], values),
          [
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${pg.escapeLiteral(username)}`,
            ...render(['REASSIGN OWNED BY {{name}} TO CURRENT_USER', 'DROP OWNED BY {{name}}', 'DROP ROLE IF EXISTS {{name}}'], values),
          ],
        ];
    try {
      for (const step of steps) await this.#execute(step);
    } catch (error) {
      // A role that does not exist is revoked; retrying would loop forever on "does not exist".
      if (errorCode(error) === UNDEFINED_OBJECT) return;
      throw this.#backendError('revoke', error);
    }
  }

  async checkConnection(): Promise<void> {
    try {
      await this.#pool.query('SELECT 1');
    } catch (error) {
      throw this.#backendError('connection check', error);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  /**
   * Runs the statements as one simple-protocol query: PostgreSQL executes it as one implicit
   * transaction, so a batch is all or nothing and costs one round-trip.
   */
  async #execute(statements: readonly string[]): Promise<void> {
    const lockAt = statements.findIndex((statement) => !CREATE_ROLE.test(statement));
    const batch = lockAt === -1 ? [...statements] : [...statements.slice(0, lockAt), CATALOG_LOCK, ...statements.slice(lockAt)];
    await this.#pool.query(batch.join(';\n'));
  }

  /** The role's current config; a role since removed from the config falls back to the defaults. */
  #roleConfig(revocation: RevocationHandle): PostgresRoleConfig | undefined {
    const role = revocation.role;
    return typeof role === 'string' && Object.hasOwn(this.#roles, role) ? this.#roles[role] : undefined;
  }

  /**
   * Wraps a pg/socket error without its cause: pg errors can quote SQL (with a password literal)
   * and carry connection parameters, so only a redacted message and the SQLSTATE survive.
   */
  #backendError(operation: string, error: unknown, extraSecrets: string[] = []): BackendError {
    const code = errorCode(error);
    const message = error instanceof Error ? error.message : String(error);
    const retryable =
      (code !== undefined && (RETRYABLE_SQLSTATE.test(code) || RETRYABLE_NODE_CODES.has(code))) || RETRYABLE_MESSAGE.test(message);
    let redacted = message;
    for (const secret of [...this.#secrets, ...extraSecrets]) redacted = redacted.split(secret).join('[redacted]');
    return new BackendError(`postgres backend: ${operation} failed: ${redacted}${code ? ` (${code})` : ''}`, retryable);
  }
}

/** The password as spelled in the URL (possibly percent-encoded), for redaction. */
function rawPassword(connectionUrl: string): string {
  return URL.canParse(connectionUrl) ? new URL(connectionUrl).password : '';
}

function validateRoleConfig(name: string, role: PostgresRoleConfig): void {
  if (!Array.isArray(role.creationStatements) || role.creationStatements.length === 0) {
    throw new TesseraError('config_invalid', `postgres backend: role "${name}" needs creationStatements`);
  }
  for (const kind of Object.keys(ALLOWED) as (keyof typeof ALLOWED)[]) {
    for (const statement of role[kind] ?? []) {
      for (const [, key] of statement.matchAll(PLACEHOLDER)) {
        if (!ALLOWED[kind].includes(key as Placeholder)) {
          throw new TesseraError('config_invalid', `postgres backend: role "${name}" ${kind} uses unknown placeholder {{${key}}}`);
        }
      }
    }
  }
}
