/**
 * The lease commands of the compiled CLI, in child processes, against a real broker (SoftHSM2,
 * SQLite) and a real PostgreSQL upstream: backend add -> grant -> lease -> login -> revoke.
 */
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ProvisionResult } from '../../provisioner/provision.js';
import type { BackendView, GrantView, LeaseRecord, LeaseResponse, PostgresCredential, RevokeResponse } from '@tessera-broker/sdk/wire';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type CliOptions, cliFails, cliJson, runCli } from '../support/cli.js';
import { createTestDatabase } from '../support/postgres.js';

const ADDRESS = 'cli-agent@test.local';
const READER = 'reader=CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}; GRANT CONNECT ON DATABASE {{database}} TO {{name}}; GRANT USAGE ON SCHEMA public TO {{name}}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{name}}';

async function login(credential: PostgresCredential): Promise<void> {
  const client = new pg.Client({ host: credential.host, port: credential.port, database: credential.database, user: credential.username, password: credential.password });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('SELECT count(*) FROM items');
  } finally {
    await client.end().catch(() => undefined);
  }
}

// Up to a dozen CLI processes per test, each loading the key store: seconds apiece on a busy machine.
describe('tessera backend / grant / lease / leases', { timeout: 180_000 }, () => {
  let broker: TestBroker;
  let database: { url: string; drop(): Promise<void> };
  let dir: string;
  let dsnFile: string;
  let agent: ProvisionResult;
  let run: CliOptions;
  let dsnPassword: string;

  /** `tessera: <code>: ...` on stderr, nothing on stdout, exit code 1. */
  async function expectError(args: string[], code: RegExp): Promise<void> {
    const result = await cliFails(args, run);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(new RegExp(`^tessera: ${code.source}: \\S`, 'm'));
  }

  beforeAll(async () => {
    broker = await startTestBroker();
    database = await createTestDatabase(inject('postgresUrl'));
    dsnPassword = decodeURIComponent(new URL(database.url).password);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query("CREATE TABLE items (id serial PRIMARY KEY, name text); INSERT INTO items (name) VALUES ('a')");
    await admin.end();
    dir = await mkdtemp(join(tmpdir(), 'tessera-lease-cli-'));
    dsnFile = join(dir, 'orders.dsn');
    writeFileSync(dsnFile, `${database.url}\n`, { mode: 0o600 });
    agent = await broker.provision(ADDRESS);
    await (await broker.clientFor(agent.key_uri)).request('POST', '/v1/enroll', { ticket: agent.ticket });
    run = { cwd: dir, env: broker.cliEnv };
  }, 180_000);

  afterAll(async () => {
    await broker?.close();
    await database?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('adds a backend from a file without echoing its connection URL', async () => {
    const added = await runCli(['backend', 'add', 'postgres', 'orders', '--connection-url-file', dsnFile, '--role', READER, '--json'], run);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stderr).toBe('');
    expect(JSON.parse(added.stdout)).toMatchObject<Partial<BackendView>>({ name: 'orders', type: 'postgres', roles: ['reader'] });

    const listed = await runCli(['backend', 'list'], run);
    expect(listed.stdout).toMatch(/^NAME\s+TYPE\s+ROLES\s+CREATED$/m);
    expect(listed.stdout).toMatch(/^orders\s+postgres\s+reader\s/m);
    const shown = await cliJson<BackendView>(['backend', 'show', 'orders', '--json'], run);
    expect(shown.name).toBe('orders');
    for (const output of [added.stdout, listed.stdout, JSON.stringify(shown)]) expect(output).not.toContain(dsnPassword);
  });

  // Two `backend add` runs in child processes, each proving the privileges on probe roles: slow on busy cores.
  it('takes the connection URL from the environment, or from argv with a warning', { timeout: 90_000 }, async () => {
    const fromEnv = await cliJson<BackendView>(['backend', 'add', 'postgres', 'from-env', '--json'], { ...run, env: { ...broker.cliEnv, TESSERA_BACKEND_CONNECTION_URL: database.url } });
    expect(fromEnv.name).toBe('from-env');
    const fromArgv = await runCli(['backend', 'add', 'postgres', 'from-argv', '--connection-url', database.url], run);
    expect(fromArgv.code).toBe(0);
    expect(fromArgv.stderr).toMatch(/^tessera: warning: .*visible/m);
    expect(fromArgv.stdout + fromArgv.stderr).not.toContain(dsnPassword);
    expect((await runCli(['backend', 'remove', 'from-env'], run)).code).toBe(0);
    // Stored state over the admin API: a CLI process per check would only add minutes.
    await broker.admin.request('DELETE', '/v1/admin/backends/from-argv');
    expect((await broker.admin.request<{ backends: BackendView[] }>('GET', '/v1/admin/backends')).backends.map((b) => b.name)).toEqual(['orders']);
    await expectError(['backend', 'add', 'postgres', 'nowhere'], /invalid_request/);
  });

  it('grants, leases a working credential, lists it, and revoking it locks the login out', async () => {
    const grant = await cliJson<GrantView>(['grant', ADDRESS, 'orders', '--role', 'reader', '--max-ttl', '1h', '--default-ttl', '15m', '--json'], run);
    expect(grant).toMatchObject({ subject: ADDRESS, backend: 'orders', role: 'reader', max_ttl_seconds: 3600, default_ttl_seconds: 900 });
    const grants = await runCli(['grant', 'list', '--backend', 'orders'], run);
    expect(grants.stdout).toMatch(new RegExp(`^${grant.grant_id}\\s+${ADDRESS}\\s+orders\\s+reader\\s+1h\\s+15m$`, 'm'));

    const lease = await cliJson<LeaseResponse<PostgresCredential>>(['lease', 'orders', '--role', 'reader', '--ttl', '5m', '--key', agent.key_uri, '--json'], run);
    expect(lease).toMatchObject({ backend: 'orders', role: 'reader', renewable: true });
    expect(Date.parse(lease.expires_at) - Date.parse(lease.issued_at)).toBe(300_000);
    await login(lease.credential);

    // Human output shows the credential the agent asked for, and only to it.
    const human = await runCli(['lease', 'issue', 'orders', '--role', 'reader', '--key', agent.key_uri], run);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^credential:\n\s+host\s+\S+/m);
    expect(human.stdout).toMatch(/^\s+password\s+\S{20,}$/m);

    // `leases list --json` runs below (--state revoked); the table form here.
    const table = await runCli(['leases', 'list', '--backend', 'orders'], run);
    expect(table.stdout).toMatch(new RegExp(`^${lease.lease_id}\\s+${ADDRESS}\\s+orders\\s+reader\\s+active\\s`, 'm'));
    expect(table.stdout).not.toContain(lease.credential.password);

    const renewed = await cliJson<{ expires_at: string }>(['lease', 'renew', lease.lease_id, '--ttl', '10m', '--key', agent.key_uri, '--json'], run);
    expect(Date.parse(renewed.expires_at)).toBeGreaterThan(Date.parse(lease.expires_at));

    const revoked = await cliJson<RevokeResponse>(['lease', 'revoke', lease.lease_id, '--key', agent.key_uri, '--json'], run);
    expect(revoked).toEqual({ lease_id: lease.lease_id, backend: lease.backend, state: 'revoked', last_error: null });
    await expect(login(lease.credential)).rejects.toThrow();
    const gone = await cliJson<LeaseRecord[]>(['leases', 'list', '--identity', ADDRESS, '--state', 'revoked', '--json'], run);
    expect(gone.find((l) => l.lease_id === lease.lease_id)).toMatchObject({ address: ADDRESS, backend: 'orders', state: 'revoked' });
    expect(JSON.stringify(gone)).not.toContain(lease.credential.password);
    // Every state of the wire schema is a filter, `pending` (being issued) too.
    expect(await cliJson<LeaseRecord[]>(['leases', 'list', '--identity', ADDRESS, '--state', 'pending', '--json'], run)).toEqual([]);

    // The admin's bulk revocation takes the lease the human-output run issued.
    const bulk = await cliJson<{ revoked: number; pending: number }>(['leases', 'revoke', '--identity', ADDRESS, '--reason', 'test', '--json'], run);
    expect(bulk).toEqual({ revoked: 1, pending: 0, failures: [] });
  });

  it('refuses bad input with a clear error and exit code 1', async () => {
    const key = ['--key', agent.key_uri];
    // Refusals decided by the broker (an unknown backend -> no_grant, a TTL over the grant's
    // maximum -> ttl_exceeds_max) are checked over HTTP in test/leases/lifecycle.test.ts; here the
    // ones the CLI decides, and one broker refusal (no_grant, below) for the exit code.
    await expectError(['lease', 'orders', '--role', 'reader', '--ttl', 'soon', ...key], /invalid_request/);
    await expectError(['grant', ADDRESS, 'orders', '--role', 'reader', '--max-ttl', 'forever'], /invalid_request/);
    await expectError(['grant', 'attr:team', 'orders', '--role', 'reader', '--max-ttl', '1h'], /invalid_request/);
    await expectError(['leases', 'revoke', '--reason', 'everything'], /invalid_request/);
    await expectError(['backend', 'add', 'postgres', 'both', '--connection-url-file', dsnFile, '--connection-url', 'postgres://x@y/z'], /invalid_request/);

    // Revoking the grant stops new leases.
    const [grant] = (await broker.admin.request<{ grants: GrantView[] }>('GET', '/v1/admin/grants?backend=orders')).grants;
    expect((await runCli(['grant', 'revoke', grant!.grant_id], run)).code).toBe(0);
    await expectError(['lease', 'orders', '--role', 'reader', ...key], /no_grant/);
  });
});
