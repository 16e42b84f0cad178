import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BackendError, type CredentialPlan, type IssuedCredential, type MintRequest } from '../../src/backends/credential-backend.js';
import { databaseOf, defaultRoles, groupNameFor, PostgresBackend, probePrefixFor, type PostgresRoleConfig } from '../../src/backends/postgres-backend.js';
import { isTesseraError, TesseraError } from '../../src/errors.js';
import { createAdminRole, createTestDatabase, startPostgres, withClient } from '../support/postgres.js';

const HOUR = 3_600_000;
/** A per-lease GRANT template, as every default role was before group roles. */
const PER_LEASE_GRANTS: PostgresRoleConfig = {
  creationStatements: ['CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{name}}'],
};
const INJECTION = `x"; DROP TABLE items; --'`;

function lease(role: string, expiresAt = new Date(Date.now() + HOUR)): MintRequest {
  return { leaseId: randomUUID(), role, expiresAt };
}

/** Opens a session as the minted role; a terminated session must not crash the test worker. */
async function login(credential: IssuedCredential): Promise<pg.Client> {
  const client = new pg.Client({
    host: String(credential.host),
    port: Number(credential.port),
    database: String(credential.database),
    user: String(credential.username),
    password: String(credential.password),
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection'),
    (error: unknown) => error,
  );
}

async function expectBackendError(promise: Promise<unknown>, retryable: boolean, secrets: string[]): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(BackendError);
  expect((error as BackendError).retryable).toBe(retryable);
  const seen = JSON.stringify({ message: (error as Error).message, stack: (error as Error).stack, cause: String((error as Error).cause) });
  for (const secret of secrets) expect(seen).not.toContain(secret);
}

function passwordOf(url: string): string {
  return decodeURIComponent(new URL(url).password);
}

describe('PostgresBackend with a CREATEROLE (non-superuser) admin', () => {
  let db: { url: string; drop(): Promise<void> };
  /** Superuser session: only sets up the database and inspects the catalogs. */
  let admin: pg.Client;
  let adminRole: { url: string; name: string };
  let backend: PostgresBackend;
  /** The default roles of a backend named `orders` on this test's database (set in beforeAll). */
  let DEFAULT_ROLES: Record<string, PostgresRoleConfig>;
  const rolesWithDefaults = (): Record<string, PostgresRoleConfig> => ({
    ...DEFAULT_ROLES,
    [INJECTION]: DEFAULT_ROLES.readonly!,
    legacy: PER_LEASE_GRANTS,
    dropper: { ...DEFAULT_ROLES.readonly!, revocationStatements: ['DROP OWNED BY {{name}}', 'DROP ROLE IF EXISTS {{name}}'] },
    atomic: {
      // The second statement is a syntax error that quotes the password back at us.
      creationStatements: ['CREATE ROLE {{name}} LOGIN PASSWORD {{password}}', 'SELECT {{password}} {{password}}'],
    },
  });

  const validUntil = async (username: string): Promise<Date | null | undefined> =>
    (await admin.query<{ rolvaliduntil: Date | null }>('SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1', [username])).rows[0]
      ?.rolvaliduntil;
  const roleExists = async (username: string): Promise<boolean> => (await validUntil(username)) !== undefined;

  async function mint(role: string, request = lease(role)): Promise<{ plan: CredentialPlan; credential: IssuedCredential }> {
    const plan = backend.plan(request);
    return { plan, credential: await backend.mint(request, plan) };
  }

  /** `backend add` with the default roles: creates (or adopts) the groups and probes a lease of each. */
  async function checkDefaults(): Promise<void> {
    const checked = new PostgresBackend({ connectionUrl: adminRole.url, roles: DEFAULT_ROLES });
    try {
      await checked.check();
    } finally {
      await checked.close();
    }
  }

  beforeAll(async () => {
    db = await createTestDatabase(inject('postgresUrl'));
    DEFAULT_ROLES = defaultRoles(databaseOf(db.url), 'orders');
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await admin.query(`
      CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
      INSERT INTO items (name) VALUES ('one'), ('two');
      CREATE SCHEMA private;
      CREATE TABLE private.secrets (value text);
      INSERT INTO private.secrets VALUES ('hidden');
    `);
    // Granting to the group roles needs the table privileges WITH GRANT OPTION (or ownership).
    adminRole = await createAdminRole(db.url);
    await admin.query(`
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${adminRole.name} WITH GRANT OPTION;
      GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${adminRole.name} WITH GRANT OPTION;
      GRANT CREATE ON SCHEMA public TO ${adminRole.name} WITH GRANT OPTION;
    `);
    await checkDefaults();
    backend = new PostgresBackend({ connectionUrl: adminRole.url, roles: rolesWithDefaults() });
  });

  afterAll(async () => {
    await backend?.close();
    await admin?.end();
    await db?.drop();
  });

  it('plans a unique, secret-free username per lease', () => {
    const request = lease('readonly');
    const plan = backend.plan(request);
    expect(plan.revocation).toEqual({ username: expect.stringMatching(/^tessera_readonly_[0-9a-f]{16}$/), role: 'readonly', group: groupNameFor(databaseOf(db.url), 'orders', 'readonly') });
    expect(backend.plan(lease('legacy')).revocation).toEqual({ username: expect.any(String), role: 'legacy' });
    expect(backend.plan(request)).toEqual(plan);
    expect(backend.plan(lease('readonly')).revocation.username).not.toBe(plan.revocation.username);
  });

  it('mints a readonly login that can SELECT granted tables only', async () => {
    const { plan, credential } = await mint('readonly');
    const url = new URL(db.url);
    expect(credential).toEqual({
      host: '127.0.0.1',
      port: Number(url.port),
      database: url.pathname.slice(1),
      username: plan.revocation.username,
      password: expect.any(String),
    });
    expect(String(credential.password).length).toBeGreaterThanOrEqual(32);
    expect(JSON.stringify(plan)).not.toContain(credential.password);
    // Only the SCRAM verifier reaches the server, never the plaintext.
    const stored = await admin.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [plan.revocation.username]);
    expect(stored.rows[0].rolpassword).toMatch(/^SCRAM-SHA-256\$\d+:/);

    const session = await login(credential);
    try {
      expect((await session.query('SELECT name FROM items ORDER BY id')).rows).toEqual([{ name: 'one' }, { name: 'two' }]);
      expect(await rejection(session.query("INSERT INTO items (name) VALUES ('three')"))).toMatchObject({ code: '42501' });
      expect(await rejection(session.query('SELECT * FROM private.secrets'))).toMatchObject({ code: '42501' });
    } finally {
      await session.end();
    }
    await backend.revoke(plan.revocation);
  });

  it('mints a readwrite login that can INSERT', async () => {
    const { plan, credential } = await mint('readwrite');
    const session = await login(credential);
    try {
      await session.query("INSERT INTO items (name) VALUES ('rw')");
      await session.query("DELETE FROM items WHERE name = 'rw'");
    } finally {
      await session.end();
    }
    await backend.revoke(plan.revocation);
  });

  it('rejects a wrong password for a minted role', async () => {
    const { plan, credential } = await mint('readonly');
    expect(await rejection(login({ ...credential, password: 'wrong' }))).toMatchObject({ code: '28P01' });
    await backend.revoke(plan.revocation);
  });

  it('sets VALID UNTIL to the lease expiry and renew moves it', async () => {
    const expiresAt = new Date(Date.now() + HOUR);
    const { plan } = await mint('readonly', lease('readonly', expiresAt));
    expect((await validUntil(String(plan.revocation.username)))?.getTime()).toBe(expiresAt.getTime());

    const renewed = new Date(expiresAt.getTime() + 2 * HOUR);
    await backend.renew(plan.revocation, renewed);
    expect((await validUntil(String(plan.revocation.username)))?.getTime()).toBe(renewed.getTime());
    await backend.revoke(plan.revocation);
  });

  it('fails renew of a gone role without retry', async () => {
    const plan = backend.plan(lease('readonly'));
    await expectBackendError(backend.renew(plan.revocation, new Date(Date.now() + HOUR)), false, []);
  });

  it('revoke blocks new logins, terminates open sessions, and is idempotent', async () => {
    const { plan, credential } = await mint('readonly');
    const open = await login(credential);
    await backend.revoke(plan.revocation);

    await expect(open.query('SELECT 1')).rejects.toThrow();
    await open.end().catch(() => undefined);
    await expect(login(credential)).rejects.toThrow();
    expect(await roleExists(String(plan.revocation.username))).toBe(false);

    await backend.revoke(plan.revocation);
  });

  it('revokes concurrent leases together, open sessions included, and one by one when one of a batch is gone', async () => {
    /** Mints `live` leases with an open session each, plans `neverMinted` more, and revokes them all in one turn. */
    const revokeInOneTurn = async (live: number, neverMinted: number) => {
      const minted = await Promise.all(Array.from({ length: live }, () => mint('readonly')));
      const sessions = await Promise.all(minted.map(({ credential }) => login(credential)));
      const plans = [...minted.map(({ plan }) => plan), ...Array.from({ length: neverMinted }, () => backend.plan(lease('readonly')))];
      await Promise.all(plans.map((plan) => backend.revoke(plan.revocation)));
      for (const session of sessions) {
        await expect(session.query('SELECT 1')).rejects.toThrow();
        await session.end().catch(() => undefined);
      }
      for (const plan of plans) expect(await roleExists(String(plan.revocation.username))).toBe(false);
    };
    await revokeInOneTurn(4, 0);
    // The batch is refused for the role that was never created; each is then revoked alone.
    await revokeInOneTurn(3, 1);
  });

  it('revokes a planned credential that was never minted', async () => {
    await backend.revoke(backend.plan(lease('readonly')).revocation);
  });

  it('revokes objects the role created', async () => {
    const { plan, credential } = await mint('readwrite');
    // Granted by the Tessera admin, so its DROP OWNED may take it back.
    await withClient(adminRole.url, (client) => client.query(`GRANT CREATE ON SCHEMA public TO ${pg.escapeIdentifier(String(plan.revocation.username))}`));
    const session = await login(credential);
    await session.query('CREATE TABLE created_by_lease (x int)');
    await session.end();

    await backend.revoke(plan.revocation);
    expect(await roleExists(String(plan.revocation.username))).toBe(false);
    // REASSIGN OWNED ran before DROP OWNED, so the table survives, owned by the admin.
    expect((await admin.query("SELECT tableowner FROM pg_tables WHERE tablename = 'created_by_lease'")).rows).toEqual([
      { tableowner: adminRole.name },
    ]);
  });

  it('uses custom revocation statements instead of the default', async () => {
    const { plan } = await mint('dropper');
    await backend.revoke(plan.revocation);
    expect(await roleExists(String(plan.revocation.username))).toBe(false);
    await backend.revoke(plan.revocation);
  });

  it('quotes injection-shaped role names and usernames', async () => {
    expect(backend.plan(lease(INJECTION)).revocation.username).toMatch(/^tessera_x_drop_table_items_[0-9a-f]{16}$/);

    const request = lease('readonly');
    const plan: CredentialPlan = { revocation: { username: `tessera_${INJECTION}`, role: INJECTION } };
    const credential = await backend.mint(request, plan);
    expect(await roleExists(`tessera_${INJECTION}`)).toBe(true);
    expect((await admin.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 2 }]);

    const session = await login(credential);
    expect((await session.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 2 }]);
    await session.end();

    await backend.renew(plan.revocation, new Date(Date.now() + 2 * HOUR));
    await backend.revoke(plan.revocation);
    expect(await roleExists(`tessera_${INJECTION}`)).toBe(false);
    expect((await admin.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 2 }]);
  });

  it('quotes an injection-shaped database name', async () => {
    const name = `tessera_test_${randomUUID().slice(0, 8)}"; DROP TABLE items; --'`;
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    const url = new URL(db.url);
    url.pathname = `/${name}`; // pg decodes the path with decodeURI, so ";" must stay raw
    const weird = new PostgresBackend({ connectionUrl: url.toString(), roles: DEFAULT_ROLES });
    try {
      await weird.check();
      const request = lease('readonly');
      const plan = weird.plan(request);
      const credential = await weird.mint(request, plan);
      expect(credential.database).toBe(name);
      await (await login(credential)).end();
      await weird.revoke(plan.revocation);
    } finally {
      await weird.close();
      await admin.query(`DROP DATABASE ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    }
  });

  it('mints all or nothing and never reports the minted password', async () => {
    const request = lease('atomic');
    const plan = backend.plan(request);
    const error = await rejection(backend.mint(request, plan));
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).retryable).toBe(false);
    expect((error as Error).message).toContain('[redacted]');
    expect((error as Error).message).toContain('42601');
    expect(await roleExists(String(plan.revocation.username))).toBe(false);
  });

  it('refuses a retried mint whose role already exists', async () => {
    const request = lease('readonly');
    const plan = backend.plan(request);
    await backend.mint(request, plan);
    await expectBackendError(backend.mint(request, plan), false, []);
    await backend.revoke(plan.revocation);
  });

  it('fails only the failing mint of concurrent ones sent to the server together', async () => {
    const retried = lease('readonly');
    const retriedPlan = backend.plan(retried);
    await backend.mint(retried, retriedPlan);
    // Submitted in one turn of the event loop, so they go to the server as one batch.
    const requests = Array.from({ length: 4 }, () => lease('readonly'));
    const plans = requests.map((request) => backend.plan(request));
    const [duplicate, ...fresh] = await Promise.allSettled([backend.mint(retried, retriedPlan), ...requests.map((request, i) => backend.mint(request, plans[i]!))]);
    expect(duplicate!.status).toBe('rejected');
    expect(((duplicate as PromiseRejectedResult).reason as BackendError).retryable).toBe(false);
    for (const outcome of fresh) {
      expect(outcome.status).toBe('fulfilled');
      const session = await login((outcome as PromiseFulfilledResult<IssuedCredential>).value);
      await session.end();
    }
    await Promise.all([retriedPlan, ...plans].map((plan) => backend.revoke(plan.revocation)));
  });

  it('rejects unknown roles and unknown placeholders', () => {
    for (const call of [() => backend.validateRole('nope'), () => backend.plan(lease('nope'))]) {
      expect(call).toThrow(expect.objectContaining({ code: 'invalid_request' }));
    }
    expect(() => backend.validateRole('toString')).toThrow(expect.objectContaining({ code: 'invalid_request' }));
    let error: unknown;
    try {
      new PostgresBackend({
        connectionUrl: db.url,
        roles: { bad: { ...DEFAULT_ROLES.readonly!, revocationStatements: ['DROP ROLE {{name}} -- {{password}}'] } },
      });
    } catch (caught) {
      error = caught;
    }
    expect(isTesseraError(error, 'config_invalid')).toBe(true);
  });

  it('reports a rejected admin password as non-retryable without echoing it', async () => {
    const url = new URL(db.url);
    url.password = 'wrong-admin-secret';
    const wrong = new PostgresBackend({ connectionUrl: url.toString(), roles: DEFAULT_ROLES });
    try {
      await expectBackendError(wrong.check(), false, ['wrong-admin-secret', passwordOf(db.url)]);
    } finally {
      await wrong.close();
    }
  });

  it('check created NOLOGIN group roles; a lease joins its group and adds no ACL entry', async () => {
    const [readonly, readwrite] = ['readonly', 'readwrite'].map((role) => groupNameFor(databaseOf(db.url), 'orders', role));
    expect(readonly).toMatch(/^tessera_tessera_tes_[0-9a-f]{8}_orders_readonly$/);
    const groups = await admin.query('SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname', [[readonly, readwrite]]);
    expect(groups.rows).toEqual([
      { rolname: readonly, rolcanlogin: false },
      { rolname: readwrite, rolcanlogin: false },
    ]);
    const acl = async () => String((await admin.query("SELECT relacl FROM pg_class WHERE relname = 'items'")).rows[0].relacl);
    const before = await acl();
    const { plan } = await mint('readonly');
    expect(await acl()).toBe(before);
    const member = await admin.query('SELECT pg_has_role($1, $2, $3) AS member', [plan.revocation.username, readonly, 'MEMBER']);
    expect(member.rows).toEqual([{ member: true }]);
    await backend.revoke(plan.revocation);
    // A second check adopts the existing groups and proves the lease life cycle again.
    await checkDefaults();
    expect(await acl()).toBe(before);
  });

  it('revokes a per-lease GRANT lease (as issued before group roles) and its open session', async () => {
    const { plan, credential } = await mint('legacy');
    expect(await (async () => String((await admin.query("SELECT relacl FROM pg_class WHERE relname = 'items'")).rows[0].relacl))()).toContain(
      String(plan.revocation.username),
    );
    const open = await login(credential);
    await backend.revoke(plan.revocation);
    await expect(open.query('SELECT 1')).rejects.toThrow();
    await open.end().catch(() => undefined);
    expect(await roleExists(String(plan.revocation.username))).toBe(false);
  });

  async function checkError(attributes: string, backendName: string): Promise<TesseraError> {
    const role = await createAdminRole(db.url, attributes);
    const probe = new PostgresBackend({ connectionUrl: role.url, roles: defaultRoles(databaseOf(db.url), backendName) });
    try {
      const error = await rejection(probe.check());
      expect(isTesseraError(error, 'backend_privilege_missing')).toBe(true);
      expect((error as Error).message).not.toContain(passwordOf(role.url));
      return error as TesseraError;
    } finally {
      await probe.close();
    }
  }

  it('check refuses an admin without CREATEROLE, naming it and the fix', async () => {
    expect((await checkError('', 'orders')).message).toMatch(/lacks CREATEROLE\. Fix: ALTER ROLE "tessera_admin_[0-9a-f]+" CREATEROLE/);
  });

  it('check refuses an admin that cannot grant the table privileges, and leaves no group behind', async () => {
    const error = await checkError('CREATEROLE', 'nogrant');
    expect(error.message).toContain('WITH GRANT OPTION');
    const groups = ['readonly', 'readwrite'].map((role) => groupNameFor(databaseOf(db.url), 'nogrant', role));
    expect((await admin.query('SELECT 1 FROM pg_roles WHERE rolname = ANY($1)', [groups])).rowCount).toBe(0);
  });

  it('check refuses an admin that cannot terminate a lease session, naming pg_signal_backend', async () => {
    // NOINHERIT: joining the lease role gives the admin none of its privileges.
    const error = await checkError('CREATEROLE NOINHERIT', 'orders');
    expect(error.message).toMatch(/Fix: GRANT pg_signal_backend TO "tessera_admin_[0-9a-f]+"/);
    expect((await admin.query('SELECT 1 FROM pg_roles WHERE starts_with(rolname, $1)', [probePrefixFor(databaseOf(db.url))])).rowCount).toBe(0);
  });

  it('mints and revokes many leases concurrently', async () => {
    const started = Date.now();
    const minted = await Promise.all(Array.from({ length: 100 }, () => mint('readonly')));
    await Promise.all(minted.map(({ plan }) => backend.revoke(plan.revocation)));
    const elapsed = Date.now() - started;
    console.info(`postgres backend: 100 concurrent mint+revoke in ${elapsed} ms`);
    for (const { plan } of minted.slice(0, 5)) expect(await roleExists(String(plan.revocation.username))).toBe(false);
  });
});

describe('PostgresBackend when the server goes away', () => {
  it('fails retryably without the admin password, then revokes after the restart', async () => {
    const cluster = await startPostgres();
    const backend = new PostgresBackend({ connectionUrl: cluster.url, roles: defaultRoles(databaseOf(cluster.url), 'orders') });
    try {
      await backend.check();
      const request = lease('readonly');
      const plan = backend.plan(request);
      await backend.mint(request, plan);

      await cluster.stop();
      const secrets = [passwordOf(cluster.url), cluster.url];
      await expectBackendError(backend.check(), true, secrets);
      await expectBackendError(backend.mint(lease('readonly'), backend.plan(lease('readonly'))), true, secrets);
      await expectBackendError(backend.revoke(plan.revocation), true, secrets);
      await expectBackendError(backend.renew(plan.revocation, new Date(Date.now() + HOUR)), true, secrets);

      await cluster.start();
      await backend.revoke(plan.revocation);
      const admin = new pg.Client({ connectionString: cluster.url });
      await admin.connect();
      const { rowCount } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [plan.revocation.username]);
      await admin.end();
      expect(rowCount).toBe(0);
    } finally {
      await backend.close();
      await cluster.destroy();
    }
  });
});
