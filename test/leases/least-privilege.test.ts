/**
 * Leasing with a least-privilege admin DSN (CREATEROLE, no superuser): the superuser only creates
 * the database and the admin role. Proves the privilege check on `backend add` / `backend check`,
 * terminate-on-revoke, and that a failed revocation is loud: logged, counted on /healthz, exit
 * status 3 with its reason from the CLI, and retried on demand.
 */
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BulkRevokeResponse } from '@tessera-broker/sdk/wire';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { runCli } from '../support/cli.js';
import { adminAgent, enrolledAgent, enrolledAgentWithKey, leaseRolesOf, login, seedUpstream, type TestAgent } from '../support/lease-env.js';
import { createAdminRole, createTestDatabase, withClient } from '../support/postgres.js';

describe('PostgreSQL leases with a CREATEROLE admin', () => {
  let env: TestBroker;
  let database: { url: string; drop(): Promise<void> };
  let adminRole: { url: string; name: string };
  let admin: TestAgent;
  let agent: TestAgent;
  let agentKey: string;
  const logged: Record<string, unknown>[] = [];
  const superuser = (sql: string) => withClient(database.url, (client) => client.query(sql));

  beforeAll(async () => {
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
    [env, database] = await Promise.all([startTestBroker({ logger }), createTestDatabase(inject('postgresUrl'))]);
    await seedUpstream(database.url);
    adminRole = await createAdminRole(database.url);
    await superuser(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${adminRole.name} WITH GRANT OPTION;
      GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${adminRole.name} WITH GRANT OPTION`);
    admin = await adminAgent(env);
    ({ agent, keyUri: agentKey } = await enrolledAgentWithKey(env, 'least@acme.local'));
  });
  afterAll(async () => {
    await env?.close();
    await database?.drop();
  });

  it('refuses a DSN without CREATEROLE, naming it and the fix, and stores nothing', async () => {
    const weak = await createAdminRole(database.url, '');
    const refused = await admin.send('POST', '/v1/admin/backends', { name: 'weak', type: 'postgres', connection_url: weak.url });
    expect(refused).toMatchObject({ status: 400, body: { error: 'backend_privilege_missing', message: expect.stringContaining(`Fix: ALTER ROLE "${weak.name}" CREATEROLE`) } });
    expect(JSON.stringify(refused.body)).not.toContain(new URL(weak.url).password);
    expect((await admin.expect<{ backends: unknown[] }>(200, 'GET', '/v1/admin/backends')).backends).toEqual([]);
  });

  it('adds, checks, leases and revokes, terminating the open session', async () => {
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'ledger', type: 'postgres', connection_url: adminRole.url });
    await admin.expect(200, 'POST', '/v1/admin/backends/ledger/check');
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: 'ledger', role: 'readonly', max_ttl_seconds: 600 });

    const lease = await agent.lease('ledger', 'readonly');
    const session = await login(lease.credential);
    expect((await session.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBeGreaterThan(0);
    expect(await agent.expect(200, 'DELETE', `/v1/leases/${lease.lease_id}`)).toMatchObject({ state: 'revoked', last_error: null });
    await expect(session.query('SELECT 1')).rejects.toThrow();
    await session.end().catch(() => undefined);
    expect(await leaseRolesOf(database.url, 'ledger')).toEqual([]);
  });

  it('a failed revocation is logged, counted on /healthz, exits 3 with its reason, and retried on demand', async () => {
    const lease = await agent.lease('ledger', 'readonly');
    await superuser(`ALTER ROLE ${adminRole.name} NOCREATEROLE`);
    try {
      const revoke = await runCli(['lease', 'revoke', lease.lease_id, '--key', agentKey], { env: env.cliEnv });
      expect(revoke.code).toBe(3);
      expect(revoke.stdout).toContain(`${lease.lease_id}: revocation-pending`);
      expect(revoke.stderr).toMatch(new RegExp(`${lease.lease_id} \\(ledger\\) is revocation-pending: postgres backend: revoke failed: permission denied`));

      expect(await (await fetch(`${env.url}/healthz`)).json()).toEqual({ status: 'ok', revocations_pending: 1, replica_lag_ms: 0 });
      const warning = logged.find((line) => line.lease_id === lease.lease_id);
      expect(warning).toMatchObject({ level: 40, backend: 'ledger', attempts: 1, reason: expect.stringContaining('permission denied'), msg: 'lease revocation failed; retrying' });
      expect(JSON.stringify(logged)).not.toContain(new URL(adminRole.url).password);

      const retry = await runCli(['leases', 'retry', '--backend', 'ledger', '--json'], { env: env.cliEnv });
      expect(retry.code).toBe(3);
      expect(JSON.parse(retry.stdout)).toMatchObject({ revoked: 0, pending: 1, failures: [{ lease_id: lease.lease_id, backend: 'ledger' }] });
    } finally {
      await superuser(`ALTER ROLE ${adminRole.name} CREATEROLE`);
    }
    // The reaper may get there first (its backoff is seconds); either way nothing is left pending.
    expect(await admin.expect<BulkRevokeResponse>(200, 'POST', '/v1/admin/leases/retry', { lease: lease.lease_id })).toMatchObject({ pending: 0, failures: [] });
    expect(await (await fetch(`${env.url}/healthz`)).json()).toEqual({ status: 'ok', revocations_pending: 0, replica_lag_ms: 0 });
    expect(await leaseRolesOf(database.url, 'ledger')).toEqual([]);
  });

  it('identity revoke exits 3 while its leases cannot be revoked', async () => {
    const other = await enrolledAgent(env, 'cascade@acme.local');
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: other.address, backend: 'ledger', role: 'readwrite', max_ttl_seconds: 600 });
    const lease = await other.lease('ledger', 'readwrite');
    await superuser(`ALTER ROLE ${adminRole.name} NOCREATEROLE`);
    try {
      const revoke = await runCli(['identity', 'revoke', other.address, '--reason', 'test'], { env: env.cliEnv });
      expect(revoke.code).toBe(3);
      expect(revoke.stderr).toContain(`${lease.lease_id} (ledger) is revocation-pending`);
    } finally {
      await superuser(`ALTER ROLE ${adminRole.name} CREATEROLE`);
    }
    // The reaper (1 s backoff) may finish it first; either way nothing is left pending.
    const retry = await runCli(['leases', 'retry'], { env: env.cliEnv });
    expect(retry).toMatchObject({ code: 0, stdout: expect.stringMatching(/^revoked [01] lease\(s\)\n$/) });
    expect(await leaseRolesOf(database.url, 'ledger')).toEqual([]);
  });
});
