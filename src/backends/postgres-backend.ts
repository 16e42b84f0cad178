/**
 * PostgreSQL backend: each lease is its own LOGIN role with a random password and VALID UNTIL set
 * to the lease expiry, created from the admin DSN (the root secret) and dropped on revoke.
 *
 * Role statements are SQL templates. PostgreSQL cannot bind parameters in utility statements
 * (CREATE ROLE, GRANT), so placeholders are substituted as quoted identifiers/literals in a single
 * pass; a value can never be read as SQL. Several statements are sent as one simple-protocol query,
 * which PostgreSQL runs as one implicit transaction: one round-trip per mint, all or nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { TesseraError } from '../errors.js';
import { TurnBatcher } from '../store/turn-batcher.js';
import {
  BackendError,
  type CredentialBackend,
  type CredentialPlan,
  type IssuedCredential,
  type MintRequest,
  type RevocationHandle,
} from './credential-backend.js';
import { ScramPasswords } from './scram.js';

export interface PostgresGroupConfig {
  /** A NOLOGIN role holding the privileges; every lease of the role joins it. */
  readonly name: string;
  /**
   * Run once, when the check creates the group (an existing group is adopted as it is).
   * Placeholders: {{group}}, {{database}}.
   */
  readonly privilegeStatements: readonly string[];
}

export interface PostgresRoleConfig {
  /** Set for group-based roles: a lease is then one CREATE ROLE ... IN ROLE and touches no table ACL. */
  readonly group?: PostgresGroupConfig;
  /**
   * Placeholders: {{name}}, {{password}}, {{expiration}}, {{database}}, {{group}}. {{password}} expands
   * to the SCRAM-SHA-256 verifier of the generated password, which PostgreSQL stores as given.
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
 * The default roles are group roles. GRANTing table privileges to every lease adds one ACL entry
 * per live lease to every table (and to pg_database/pg_namespace, which have no TOAST): the row
 * overflows ("row is too big") at a few thousand leases, and concurrent GRANTs on one table must
 * serialise. A lease that only joins a group touches no ACL, so neither limit applies.
 * No GRANT CONNECT / USAGE ON SCHEMA public: PUBLIC holds both by default; where an operator
 * revoked them, the group needs them (grant them to the adopted group).
 */
export function defaultRoles(database: string, backend: string): Record<string, PostgresRoleConfig> {
  const group = (role: string, privilegeStatements: string[]): PostgresRoleConfig => ({
    group: { name: groupNameFor(database, backend, role), privilegeStatements },
    creationStatements: ['CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}} IN ROLE {{group}}'],
  });
  return {
    readonly: group('readonly', [
      'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{group}}',
      'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {{group}}',
    ]),
    readwrite: group('readwrite', [
      'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {{group}}',
      'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {{group}}',
      'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {{group}}',
      'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {{group}}',
    ]),
  };
}

/**
 * tessera_<database>_<backend>_<role>, within PostgreSQL's 63-byte identifier limit. Roles are
 * cluster-wide but table privileges are per database: a group named without its database would be
 * adopted, privilege-less, by a same-named backend on another database of the cluster.
 */
export function groupNameFor(database: string, backend: string, role: string): string {
  return `tessera_${fit(database, 20)}_${fit(backend, 20)}_${fit(role, 12)}`;
}

/** Probe logins of `backend check` on a database: named after it, so checks of other databases' backends are told apart. */
export function probePrefixFor(database: string): string {
  return `tessera_probe_${fit(database, 24)}_`;
}

/** The database a connection string names, as pg itself reads it (the default is the user's name). */
export function databaseOf(connectionUrl: string): string {
  let target: pg.Client;
  try {
    target = new pg.Client({ connectionString: connectionUrl });
  } catch {
    throw new TesseraError('config_invalid', 'postgres backend: connectionUrl is not a valid connection string');
  }
  return target.database ?? target.user ?? 'postgres';
}

/**
 * Concurrent GRANTs/REVOKEs on one object (a table, the database) rewrite the same ACL row without
 * locking it and fail with "tuple concurrently updated". Batches that may touch ACLs (per-lease
 * GRANT templates, and revoking such leases) take this advisory lock, so they queue instead; it is
 * released at commit. A leading CREATE ROLE runs before the lock: it only inserts its own row, and
 * with a SCRAM password it costs milliseconds of server CPU that should not be serialised.
 */
const CATALOG_LOCK = 'SELECT pg_advisory_xact_lock(7304419821736620081)';
const CREATE_ROLE = /^\s*CREATE\s+(ROLE|USER)\b/i;

const DEFAULT_RENEW = ['ALTER ROLE {{name}} VALID UNTIL {{expiration}}'];

/**
 * A server process runs one query's statements one after another: on 2 cores, CREATE ROLE ... IN
 * ROLE in batches of 10 on one connection ran at half the rate of single statements on 10
 * connections, in batches of 2-3 on 4-5 connections at the same or a higher rate, for a third of
 * the round trips and commits.
 */
const CREATIONS_PER_QUERY = 3;

/**
 * Logins revoked per batch: the statements are cheap per role (no password hashing), so one
 * transaction takes many; the cap bounds what one refused batch costs to retry one by one.
 */
const REVOCATIONS_PER_QUERY = 32;

type Placeholder = 'name' | 'password' | 'expiration' | 'database' | 'group';
type Values = Partial<Record<Placeholder, string>>;

const PLACEHOLDER = /\{\{\s*(\w+)\s*\}\}/g;
const ALLOWED: Record<'creationStatements' | 'revocationStatements' | 'renewStatements', readonly Placeholder[]> = {
  creationStatements: ['name', 'password', 'expiration', 'database', 'group'],
  revocationStatements: ['name', 'database'],
  renewStatements: ['name', 'expiration', 'database'],
};
const IDENTIFIERS: ReadonlySet<Placeholder> = new Set(['name', 'database', 'group']);

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
const INSUFFICIENT_PRIVILEGE = '42501';
const WARNING_PRIVILEGE_NOT_GRANTED = '01007';
/** The probe login expires on its own should the broker die mid-check. */
const PROBE_TTL_MS = 5 * 60_000;

/** Group privileges are granted by the admin, so it must hold them grantably; or a DBA creates the group. */
function grantOptionFix(admin: string, group: string): string {
  return `make ${admin} the owner of the tables, or GRANT the privileges ON ALL TABLES (and SEQUENCES) IN SCHEMA public TO ${admin} WITH GRANT OPTION; or create ${group} (NOLOGIN, holding the privileges) for Tessera to adopt`;
}

interface HintContext {
  readonly admin: string;
  /** The role PostgreSQL's message names, quoted. */
  readonly named: string;
  /** The group being set up, if any. */
  readonly group: string;
}

/** PostgreSQL's refusals during the check: the privilege each means and the statement that grants it. */
const PRIVILEGE_HINTS: readonly [pattern: RegExp, hint: (c: HintContext) => [privilege: string, fix: string]][] = [
  [/permission denied to create role/i, (c) => ['CREATEROLE', `ALTER ROLE ${c.admin} CREATEROLE`]],
  [/pg_signal_backend|process is being terminated/i, (c) => ['pg_signal_backend', `GRANT pg_signal_backend TO ${c.admin}`]],
  [
    /admin option on role "([^"]+)"|permission denied to grant role "([^"]+)"/i,
    (c) => [`ADMIN OPTION on the group role ${c.named}`, `GRANT ${c.named} TO ${c.admin} WITH ADMIN OPTION`],
  ],
  [/permission denied for (?:table|sequence|schema) (\S+)/i, (c) => [`the privileges to grant on ${c.named}`, grantOptionFix(c.admin, c.group)]],
  [
    /permission denied to (?:reassign|drop) objects/i,
    (c) => ['the privileges of the roles it creates (Tessera grants itself each lease role; that needs INHERIT)', `ALTER ROLE ${c.admin} INHERIT`],
  ],
];

function privilegeMissing(privilege: string, fix: string, detail?: string): TesseraError {
  return new TesseraError('backend_privilege_missing', `postgres backend: the admin role lacks ${privilege}${detail ? ` (${detail})` : ''}. Fix: ${fix}`);
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * What revoke() runs for the login `username`, step by step (one transaction each): the role's
 * custom revocation statements, else the default lock-out / terminate / drop sequence.
 */
export function revocationSteps(username: string, database: string, custom?: readonly string[]): string[][] {
  if (!custom) return defaultRevocationSteps([username]);
  // The admin joins the role first, as in the default steps.
  return [render(['GRANT {{name}} TO CURRENT_USER', ...custom], { name: username, database })];
}

/**
 * The default revocation of the logins `usernames`, in two steps (one transaction each) whose
 * statements each name all of them: revoking many logins costs two round trips, not two each.
 */
export function defaultRevocationSteps(usernames: readonly string[]): string[][] {
  const names = usernames.map((username) => pg.escapeIdentifier(username)).join(', ');
  return [
    // NOLOGIN commits first so no new session can start while open ones are terminated.
    usernames.map((username) => `ALTER ROLE ${pg.escapeIdentifier(username)} NOLOGIN`),
    [
      // The admin joins the roles first: PostgreSQL lets a non-superuser terminate a role's sessions
      // and reassign or drop what it owns only with the privileges of that role, and CREATEROLE may
      // grant that membership (on 16+, through the ADMIN OPTION it holds on roles it created).
      `GRANT ${names} TO CURRENT_USER`,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN (${usernames.map((username) => pg.escapeLiteral(username)).join(', ')})`,
      // Then ownership moves to the admin, grants go and the roles are dropped.
      `REASSIGN OWNED BY ${names} TO CURRENT_USER`,
      `DROP OWNED BY ${names}`,
      `DROP ROLE IF EXISTS ${names}`,
    ],
  ];
}

function slug(text: string, length: number): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, length) || 'role';
}

/** The slug if it fits, else its start and a hash of the whole: names that differ stay apart. */
function fit(text: string, length: number): string {
  const whole = slug(text, Infinity);
  return whole.length <= length ? whole : `${whole.slice(0, length - 9)}_${createHash('sha256').update(text).digest('hex').slice(0, 8)}`;
}

/** Role names are limited to 63 bytes; slug + 16 hex chars of the lease id hash stays well below. */
function usernameFor(role: string, leaseId: string): string {
  return `tessera_${slug(role, 24)}_${createHash('sha256').update(leaseId).digest('hex').slice(0, 16)}`;
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
  readonly #passwords = new ScramPasswords();
  /** Strings that must never leave this class: the admin password and DSN. */
  readonly #secrets: string[];
  /**
   * Creation batches that take no lock (CREATE ROLE only) of concurrent mints go to the server a
   * few at a time, as one simple query: one round trip and one commit for several leases. A
   * server-side error rolled all of them back, so each is then run alone to find the one that
   * failed; a lost connection fails them all (each lease is then revoked, as for a lone mint).
   */
  readonly #creations = new TurnBatcher<string, void>({
    maxItems: CREATIONS_PER_QUERY,
    // Mints arrive together: woken by one batch of lease intents (src/leases/issuer.ts).
    gather: 'tick',
    together: async (batches) => {
      await this.#pool.query(batches.join(';\n'));
      return batches.map(() => undefined);
    },
    alone: async (batch) => void (await this.#pool.query(batch)),
    undone: (error) => error instanceof pg.DatabaseError,
  });

  /**
   * Default revocations of group leases (which touch no ACL, so take no lock) requested in one
   * turn go to the server together: each step names all the logins. If PostgreSQL refuses a batch
   * (e.g. one role is already gone), each is run alone to find it: the steps are idempotent, so
   * a first step already committed for the batch is harmless to repeat.
   */
  readonly #revocations = new TurnBatcher<string, void>({
    maxItems: REVOCATIONS_PER_QUERY,
    together: async (usernames) => {
      for (const step of defaultRevocationSteps(usernames)) await this.#pool.query(step.join(';\n'));
      return usernames.map(() => undefined);
    },
    alone: async (username) => {
      for (const step of defaultRevocationSteps([username])) await this.#pool.query(step.join(';\n'));
    },
    undone: (error) => error instanceof pg.DatabaseError,
  });

  constructor(config: PostgresBackendConfig) {
    // pg's own parser (via an unconnected client) decides where the pool connects, so the
    // credential returned to agents names the same host, port and database.
    this.#database = databaseOf(config.connectionUrl);
    const target = new pg.Client({ connectionString: config.connectionUrl });
    this.#host = target.host;
    this.#port = target.port;
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
    return this.#planFor(request.role, usernameFor(request.role, request.leaseId));
  }

  async mint(request: MintRequest, plan: CredentialPlan): Promise<IssuedCredential> {
    this.validateRole(request.role);
    const username = handleString(plan.revocation, 'username');
    const { password, verifier } = this.#passwords.take();
    const role = this.#roles[request.role]!;
    const statements = render(role.creationStatements, {
      name: username,
      password: verifier,
      expiration: request.expiresAt.toISOString(),
      database: this.#database,
      ...(role.group && { group: role.group.name }),
    });
    try {
      // Only statements after the leading CREATE ROLE can touch an ACL (a per-lease GRANT template).
      if (statements.every((statement) => CREATE_ROLE.test(statement))) await this.#creations.submit(statements.join(';\n'));
      else await this.#execute(statements, true);
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
      await this.#execute(render(statements, { name: username, expiration: expiresAt.toISOString(), database: this.#database }), true);
    } catch (error) {
      if (errorCode(error) === UNDEFINED_OBJECT) {
        throw new BackendError(`postgres backend: role ${username} no longer exists`, false);
      }
      throw this.#backendError('renew', error);
    }
  }

  async revoke(revocation: RevocationHandle): Promise<void> {
    const username = handleString(revocation, 'username');
    const custom = this.#roleConfig(revocation)?.revocationStatements;
    // A lease recorded without a group (per-lease GRANTs, or issued before group roles) may hold
    // ACL entries that DROP OWNED rewrites: it queues on the catalog lock. A group lease holds none.
    const serialise = typeof revocation.group !== 'string';
    try {
      if (!custom && !serialise) await this.#revocations.submit(username);
      else for (const step of revocationSteps(username, this.#database, custom)) await this.#execute(step, serialise);
    } catch (error) {
      // A role that does not exist is revoked; retrying would loop forever on "does not exist".
      if (errorCode(error) === UNDEFINED_OBJECT) return;
      throw this.#backendError('revoke', error);
    }
  }

  /**
   * Proves the admin DSN can do everything leases need, by doing it: creates (or adopts) the group
   * roles, then for every role mints a probe login, opens a session as it, revokes it (which must
   * terminate that session) and checks the role is gone. A missing privilege throws
   * backend_privilege_missing naming it and the GRANT that fixes it.
   */
  async check(): Promise<void> {
    const client = await this.#pool.connect().catch((error: unknown) => {
      throw this.#backendError('connection check', error);
    });
    let admin: string;
    try {
      const { rows } = await client
        .query<{ name: string; rolsuper: boolean; rolcreaterole: boolean }>('SELECT rolname AS name, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user')
        .catch((error: unknown) => {
          throw this.#backendError('connection check', error);
        });
      admin = rows[0]!.name;
      if (!rows[0]!.rolsuper && !rows[0]!.rolcreaterole) throw privilegeMissing('CREATEROLE', `ALTER ROLE ${pg.escapeIdentifier(admin)} CREATEROLE`);
      for (const role of Object.values(this.#roles)) {
        const group = role.group;
        if (group) await this.#ensureGroup(client, group, admin).catch((error: unknown) => {
          throw this.#checkError(error, admin, group.name);
        });
      }
    } finally {
      client.release();
    }
    for (const role of Object.keys(this.#roles)) await this.#probe(role, admin);
  }

  async close(): Promise<void> {
    await this.#passwords.close();
    await this.#pool.end();
  }

  /**
   * Runs the statements as one simple-protocol query: PostgreSQL executes it as one implicit
   * transaction, so a batch is all or nothing and costs one round-trip. `serialise` takes the
   * catalog lock after any leading CREATE ROLE.
   */
  async #execute(statements: readonly string[], serialise: boolean): Promise<void> {
    const lockAt = statements.findIndex((statement) => !CREATE_ROLE.test(statement));
    const batch = !serialise || lockAt === -1 ? [...statements] : [...statements.slice(0, lockAt), CATALOG_LOCK, ...statements.slice(lockAt)];
    await this.#pool.query(batch.join(';\n'));
  }

  #planFor(role: string, username: string): CredentialPlan {
    const group = this.#roles[role]!.group;
    return { revocation: { username, role, ...(group && { group: group.name }) } };
  }

  /**
   * Adopts an existing group as it is (a DBA may have created it with exactly the privileges
   * wanted), else creates it with its privileges in one transaction. GRANT on objects the admin
   * neither owns nor holds WITH GRANT OPTION only warns (01007), so a warning rolls it back.
   */
  async #ensureGroup(client: pg.PoolClient, group: PostgresGroupConfig, admin: string): Promise<void> {
    const { rows } = await client.query<{ rolcanlogin: boolean; rolsuper: boolean }>('SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = $1', [group.name]);
    if (rows[0]) {
      if (rows[0].rolcanlogin || rows[0].rolsuper) {
        throw new TesseraError('invalid_request', `postgres backend: role ${group.name} exists but is not a NOLOGIN, non-superuser group role; it cannot be adopted.`);
      }
      return;
    }
    const refused: string[] = [];
    const onNotice = (notice: { code?: string; message?: string }) => {
      if (notice.code === WARNING_PRIVILEGE_NOT_GRANTED) refused.push(notice.message ?? '');
    };
    client.on('notice', onNotice);
    try {
      await client.query('BEGIN');
      await client.query(`CREATE ROLE ${pg.escapeIdentifier(group.name)} NOLOGIN`);
      for (const statement of render(group.privilegeStatements, { group: group.name, database: this.#database })) await client.query(statement);
      if (refused.length > 0) {
        throw privilegeMissing(`the privileges to grant to ${group.name} (${refused[0]})`, grantOptionFix(pg.escapeIdentifier(admin), pg.escapeIdentifier(group.name)));
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.off('notice', onNotice);
    }
  }

  /** One lease's life on a probe role, with an open session that revoke must terminate. */
  async #probe(role: string, admin: string): Promise<void> {
    const plan = this.#planFor(role, `${probePrefixFor(this.#database)}${randomBytes(8).toString('hex')}`);
    const request = { leaseId: handleString(plan.revocation, 'username'), role, expiresAt: new Date(Date.now() + PROBE_TTL_MS) };
    let session: pg.Client | undefined;
    try {
      const credential = await this.mint(request, plan);
      session = new pg.Client({ host: this.#host, port: this.#port, database: this.#database, user: String(credential.username), password: String(credential.password) });
      session.on('error', () => undefined); // the termination below
      await session.connect();
      await session.query('SELECT 1');
      await this.revoke(plan.revocation);
      // Custom revocation statements decide for themselves whether sessions end.
      const survived = this.#roles[role]!.revocationStatements === undefined && (await session.query('SELECT 1').then(() => true, () => false));
      if (survived) throw privilegeMissing('pg_signal_backend (a revoked lease kept its open session)', `GRANT pg_signal_backend TO ${pg.escapeIdentifier(admin)}`);
    } catch (error) {
      // Best effort: the probe must not outlive a failed check.
      await this.#pool.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(handleString(plan.revocation, 'username'))}`).catch(() => undefined);
      throw this.#checkError(error, admin, this.#roles[role]!.group?.name ?? role);
    } finally {
      await session?.end().catch(() => undefined);
    }
  }

  /** Maps a refused probe step to the privilege it lacked; anything else stays a BackendError. */
  #checkError(error: unknown, admin: string, group: string): unknown {
    if (error instanceof TesseraError) return error;
    const cause = error instanceof BackendError ? error : this.#backendError('check', error);
    if (!cause.message.includes(`(${INSUFFICIENT_PRIVILEGE})`)) return cause;
    for (const [pattern, hint] of PRIVILEGE_HINTS) {
      const match = pattern.exec(cause.message);
      if (!match) continue;
      const [privilege, fix] = hint({ admin: pg.escapeIdentifier(admin), named: pg.escapeIdentifier(match[1] ?? match[2] ?? ''), group: pg.escapeIdentifier(group) });
      return privilegeMissing(privilege, fix, cause.message);
    }
    return privilegeMissing('a privilege PostgreSQL refused', 'see the message', cause.message);
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
