/**
 * No ceiling on live leases: with the default (group) roles a lease touches no table ACL, so one
 * database holds 20,000 live leases — far past the ~2,441 at which per-lease GRANTs overflowed the
 * table's ACL row — and an identity revocation drops every one of them upstream. Leases are issued
 * through the real issuer and PostgreSQL backend, in-process rather than over HTTP, to stay quick
 * on two busy cores; the revocation is one admin HTTP request.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { adminAgent, enrolledAgent, issueInProcess, leaseRolesOf, seedUpstream, type TestAgent } from '../support/lease-env.js';
import { createAdminRole, createTestDatabase, withClient } from '../support/postgres.js';

const LEASES = Number(process.env.TESSERA_TEST_LEASES ?? 20_000);

describe(`${LEASES} live leases on one database with the default roles`, () => {
  let env: TestBroker;
  let database: { url: string; drop(): Promise<void> };
  let admin: TestAgent;
  let agent: TestAgent;

  const leaseRoles = async () => (await leaseRolesOf(database.url, 'fleet')).length;

  beforeAll(async () => {
    [env, database] = await Promise.all([startTestBroker(), createTestDatabase(inject('postgresUrl'))]);
    await seedUpstream(database.url);
    const adminRole = await createAdminRole(database.url);
    await withClient(database.url, (client) =>
      client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${adminRole.name} WITH GRANT OPTION;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${adminRole.name} WITH GRANT OPTION`),
    );
    admin = await adminAgent(env);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'fleet', type: 'postgres', connection_url: adminRole.url });
    agent = await enrolledAgent(env, 'fleet@acme.local');
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: 'fleet', role: 'readonly', max_ttl_seconds: 3600 });
  });
  afterAll(async () => {
    await env?.close();
    await database?.drop();
  });

  // A guard against a hang, not a speed check: 20,000 SCRAM verifiers, CREATE ROLEs and DROP ROLEs
  // took ~35 s on two idle cores (over 360 s once, with stress-ng keeping both cores busy).
  it('holds them all live, then revokes them all by revoking the identity', { timeout: 900_000 }, async () => {
    const started = Date.now();
    await issueInProcess(env, agent.address, LEASES, { backend: 'fleet', role: 'readonly' });
    const issuedMs = Date.now() - started;
    expect(await leaseRoles()).toBe(LEASES);

    const revokeStarted = Date.now();
    const revoked = await admin.expect<{ leases: { revoked: number; pending: number } }>(200, 'POST', `/v1/admin/identities/${encodeURIComponent(agent.address)}/revoke`, { reason: 'fleet retired' });
    console.info(`${LEASES} leases: issued in ${issuedMs} ms, revoked by identity cascade in ${Date.now() - revokeStarted} ms`);
    expect(revoked.leases).toMatchObject({ revoked: LEASES, pending: 0 });
    expect(await leaseRoles()).toBe(0);
  });
});
