import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseProofHeader, PROOF_SCHEME } from '../../src/identity/proof.js';
import { startTestBroker, type TestBroker, type TestDialect } from '../support/broker.js';
import {
  adminAgent,
  enrolledAgent,
  login,
  loginFails,
  responseLog,
  seedUpstream,
  sessionIsGone,
  type TestAgent,
  withClient,
} from '../support/lease-env.js';
import { createTestDatabase } from '../support/postgres.js';

interface LeaseView {
  lease_id: string;
  address: string;
  state: string;
  expires_at: string;
  max_expires_at: string;
  renewable: boolean;
  revoked_by: string | null;
  revocation_reason: string | null;
}
interface AuditEvent {
  action: string;
  outcome: string;
  reason: string | null;
  actor: string | null;
  identity_id: string | null;
  details: Record<string, unknown>;
  proof: string | null;
}

describe.each<TestDialect>(['sqlite', 'postgres'])('leased PostgreSQL credentials (%s store)', (dialect) => {
  let env: TestBroker;
  let admin: TestAgent;
  let upstream: { url: string; drop(): Promise<void> };
  const backend = `pg-${dialect}`;
  const sessions: pg.Client[] = [];

  beforeAll(async () => {
    upstream = await createTestDatabase(inject('postgresUrl'));
    await seedUpstream(upstream.url);
    env = await startTestBroker({ dialect });
    admin = await adminAgent(env);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: backend, type: 'postgres', connection_url: upstream.url });
  });
  afterAll(async () => {
    await Promise.all(sessions.map((s) => s.end().catch(() => undefined)));
    await env?.close();
    await upstream?.drop();
  });

  const grant = (subject: string, role: string, max: number, def?: number) =>
    admin.expect(201, 'POST', '/v1/admin/grants', { subject, backend, role, max_ttl_seconds: max, ...(def !== undefined && { default_ttl_seconds: def }) });
  const audit = async (action: string) =>
    (await admin.expect<{ events: AuditEvent[] }>(200, 'GET', `/v1/admin/audit?action=${action}&limit=1000`)).events;
  const open = async (credential: Parameters<typeof login>[0]) => {
    const session = await login(credential);
    sessions.push(session);
    return session;
  };

  it('registers backends only after checking the connection, and never shows the root secret', async () => {
    const unreachable = await admin.send('POST', '/v1/admin/backends', { name: 'nowhere', type: 'postgres', connection_url: 'postgres://u:hunter2-pw@127.0.0.1:1/x' });
    expect(unreachable).toMatchObject({ status: 400, body: { error: 'backend_unreachable' } });
    expect(JSON.stringify(unreachable.body)).not.toContain('hunter2-pw');
    expect(await admin.send('POST', '/v1/admin/backends', { name: backend, type: 'postgres', connection_url: upstream.url })).toMatchObject({
      status: 409,
      body: { error: 'conflict' },
    });
    expect(await admin.send('POST', '/v1/admin/backends', { name: 'bad', type: 'postgres', connection_url: upstream.url, roles: { r: { creation_statements: ['{{nope}}'] } } })).toMatchObject({
      status: 400,
      body: { error: 'invalid_request' },
    });
    const shown = await admin.expect(200, 'GET', `/v1/admin/backends/${backend}`);
    expect(shown).toEqual({ name: backend, type: 'postgres', roles: ['readonly', 'readwrite'], created_at: expect.any(String) });
    expect((await admin.expect<{ backends: unknown[] }>(200, 'GET', '/v1/admin/backends')).backends).toEqual([shown]);
  });

  it('issues a credential that logs in and can do what its role allows and nothing more', async () => {
    const agent = await enrolledAgent(env, `reader-${dialect}@acme.local`);
    await grant(agent.address, 'readonly', 3600, 600);
    const lease = await agent.lease(backend, 'readonly');
    expect(lease).toMatchObject({ backend, backend_type: 'postgres', role: 'readonly', renewable: true, credential: { username: expect.stringMatching(/^tessera_readonly_/) } });
    expect(Date.parse(lease.expires_at) - Date.parse(lease.issued_at)).toBe(600_000);

    const session = await open(lease.credential);
    expect((await session.query('SELECT name FROM items ORDER BY id')).rows).toEqual([{ name: 'alpha' }, { name: 'beta' }]);
    await expect(session.query("INSERT INTO items (name) VALUES ('x')")).rejects.toMatchObject({ code: '42501' });
    await expect(session.query('SELECT * FROM private.payroll')).rejects.toMatchObject({ code: '42501' });

    expect(await agent.expect(200, 'GET', `/v1/leases/${lease.lease_id}`)).toMatchObject({ lease_id: lease.lease_id, state: 'active', address: agent.address });
    const stranger = await enrolledAgent(env, `stranger-${dialect}@acme.local`);
    expect(await stranger.send('GET', `/v1/leases/${lease.lease_id}`)).toMatchObject({ status: 404, body: { error: 'not_found' } });
    expect(await stranger.send('DELETE', `/v1/leases/${lease.lease_id}`)).toMatchObject({ status: 404, body: { error: 'not_found' } });
    expect(await admin.expect(200, 'GET', `/v1/leases/${lease.lease_id}`)).toMatchObject({ state: 'active' });

    const granted = (await audit('lease.granted')).find((e) => e.details.lease_id === lease.lease_id);
    expect(granted).toMatchObject({ actor: agent.identityId, identity_id: agent.identityId, details: { backend, role: 'readonly' } });
  });

  it('audits each of many concurrent grants with the proof of the request that asked for it', async () => {
    const agents = await Promise.all([1, 2].map((i) => enrolledAgent(env, `concurrent-${i}-${dialect}@acme.local`)));
    for (const agent of agents) await grant(agent.address, 'readonly', 600);
    // Issued together, their intents and activations are written in shared transactions.
    const leases = await Promise.all(agents.flatMap((agent) => [1, 2, 3].map(async () => ({ agent, lease: await agent.lease(backend, 'readonly') }))));
    const path = '/v1/admin/audit/export';
    const exported = await fetch(env.url + path, { headers: { authorization: `${PROOF_SCHEME} ${await admin.proof('GET', path)}` } });
    const granted = new Map(
      (await exported.text())
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { action?: string; actor: string; proof: string | null; details: { lease_id?: string } })
        .filter((record) => record.action === 'lease.granted')
        .map((record) => [record.details.lease_id, record]),
    );
    const proofs = leases.map(({ agent, lease }) => {
      const event = granted.get(lease.lease_id);
      expect(event).toMatchObject({ actor: agent.identityId, proof: expect.any(String) });
      expect(JSON.parse(Buffer.from(event!.proof!.split('.')[0]!, 'base64url').toString())).toMatchObject({ kid: agent.identityId });
      return event!.proof;
    });
    expect(new Set(proofs).size).toBe(leases.length);
  });

  it('grants by attribute', async () => {
    const agent = await enrolledAgent(env, `writer-${dialect}@acme.local`, { team: `payments-${dialect}` });
    await grant(`attr:team=payments-${dialect}`, 'readwrite', 600);
    const session = await open((await agent.lease(backend, 'readwrite')).credential);
    await session.query("INSERT INTO items (name) VALUES ('gamma')");
  });

  it('renews up to the maximum TTL and moves the upstream expiry', async () => {
    const agent = await enrolledAgent(env, `renewer-${dialect}@acme.local`);
    await grant(agent.address, 'readonly', 120, 60);
    const lease = await agent.lease(backend, 'readonly');
    const view = await agent.expect<LeaseView>(200, 'GET', `/v1/leases/${lease.lease_id}`);
    const renewed = await agent.expect<{ expires_at: string; renewable: boolean }>(200, 'POST', `/v1/leases/${lease.lease_id}/renew`, { ttl_seconds: 3600 });
    expect(renewed).toEqual({ lease_id: lease.lease_id, expires_at: view.max_expires_at, renewable: false });
    const validUntil = await withClient(upstream.url, async (c) =>
      (await c.query<{ v: Date }>('SELECT rolvaliduntil AS v FROM pg_roles WHERE rolname = $1', [lease.credential.username])).rows[0]!.v,
    );
    expect(validUntil.toISOString()).toBe(view.max_expires_at);

    await agent.expect(200, 'DELETE', `/v1/leases/${lease.lease_id}`);
    expect(await agent.send('POST', `/v1/leases/${lease.lease_id}/renew`, {})).toMatchObject({ status: 409, body: { error: 'lease_inactive' } });
  });

  it('revokes on DELETE: no new login, and the open session is gone', async () => {
    const agent = await enrolledAgent(env, `deleter-${dialect}@acme.local`);
    await grant(agent.address, 'readonly', 600);
    const lease = await agent.lease(backend, 'readonly');
    const session = await open(lease.credential);
    expect(await agent.expect(200, 'DELETE', `/v1/leases/${lease.lease_id}`)).toEqual({ lease_id: lease.lease_id, backend: lease.backend, state: 'revoked', last_error: null });
    expect(await sessionIsGone(session)).toBe(true);
    expect((await loginFails(lease.credential)).message).toMatch(/password authentication failed|does not exist|not permitted/);
    expect(await agent.expect(200, 'DELETE', `/v1/leases/${lease.lease_id}`)).toEqual({ lease_id: lease.lease_id, backend: lease.backend, state: 'revoked', last_error: null });
    const revoked = (await audit('lease.revoked')).find((e) => e.details.lease_id === lease.lease_id);
    expect(revoked).toMatchObject({ actor: agent.identityId, reason: 'released by owner' });
    // Recorded in a batch on a later turn, yet with the owner's signed DELETE.
    expect(parseProofHeader(`${PROOF_SCHEME} ${revoked!.proof}`)).toMatchObject({ kid: agent.identityId, claims: { htm: 'DELETE' } });
  });

  it('expires leases through the reaper', async () => {
    const agent = await enrolledAgent(env, `shortlived-${dialect}@acme.local`);
    await grant(agent.address, 'readonly', 60);
    const lease = await agent.lease(backend, 'readonly');
    const session = await open(lease.credential);
    const state = async () => (await agent.expect<LeaseView>(200, 'GET', `/v1/leases/${lease.lease_id}`)).state;
    await env.scheduler.tick(); // a sweep before the expiry leaves the lease alone
    expect(await state()).toBe('active');
    expect(await sessionIsGone(session)).toBe(false);
    // Past the expiry by the broker's clock, the reaper's next run revokes it upstream.
    env.clock.advance(61_000);
    try {
      await env.scheduler.tick();
      expect(await state()).toBe('expired');
    } finally {
      env.clock.advance(-61_000);
    }
    expect(await sessionIsGone(session)).toBe(true);
    await loginFails(lease.credential);
    expect((await audit('lease.expired')).find((e) => e.details.lease_id === lease.lease_id)).toMatchObject({ actor: null, outcome: 'success' });
  });

  it('denies without a grant, above the max TTL, after revocation and on a replayed proof, and audits each', async () => {
    const agent = await enrolledAgent(env, `denied-${dialect}@acme.local`);
    await grant(agent.address, 'readonly', 60);
    expect(await agent.send('POST', '/v1/leases', { backend, role: 'readwrite' })).toMatchObject({ status: 403, body: { error: 'no_grant' } });
    expect(await agent.send('POST', '/v1/leases', { backend: 'no-such-backend', role: 'readonly' })).toMatchObject({ status: 403, body: { error: 'no_grant' } });
    expect(await agent.send('POST', '/v1/leases', { backend, role: 'readonly', ttl_seconds: 61 })).toMatchObject({ status: 400, body: { error: 'ttl_exceeds_max' } });

    const body = { backend, role: 'readonly' };
    const proof = await agent.proof('POST', '/v1/leases', JSON.stringify(body));
    expect(await agent.send('POST', '/v1/leases', body, proof)).toMatchObject({ status: 201 });
    expect(await agent.send('POST', '/v1/leases', body, proof)).toMatchObject({ status: 401, body: { error: 'proof_replayed' } });

    await admin.expect(200, 'POST', `/v1/admin/identities/${encodeURIComponent(agent.address)}/revoke`, { reason: 'drill' });
    expect(await agent.send('POST', '/v1/leases', body)).toMatchObject({ status: 403, body: { error: 'identity_revoked' } });

    const denied = (await audit('lease.denied')).filter((e) => e.identity_id === agent.identityId);
    expect(denied.map((e) => e.reason)).toEqual(['no_grant', 'no_grant', 'ttl_exceeds_max']);
    expect(denied[0]!.details).toMatchObject({ backend, role: 'readwrite' });
    const rejected = (await audit('proof.rejected')).filter((e) => e.identity_id === agent.identityId);
    expect(rejected.map((e) => e.reason)).toEqual(['proof_replayed', 'identity_revoked']);
  });

  it('revokes every lease of a revoked identity, sessions included', async () => {
    const agent = await enrolledAgent(env, `cascade-${dialect}@acme.local`);
    await grant(agent.address, 'readonly', 600);
    const leases = [await agent.lease(backend, 'readonly'), await agent.lease(backend, 'readonly')];
    const session = await open(leases[0]!.credential);
    const revoked = await admin.expect(200, 'POST', `/v1/admin/identities/${encodeURIComponent(agent.address)}/revoke`, { reason: 'compromised' });
    expect(revoked).toMatchObject({ identity: { address: agent.address, status: 'revoked' }, leases: { revoked: 2, pending: 0 } });
    expect(await sessionIsGone(session)).toBe(true);
    for (const lease of leases) await loginFails(lease.credential);
    const listed = await admin.expect<{ leases: LeaseView[] }>(200, 'GET', `/v1/admin/leases?identity=${encodeURIComponent(agent.address)}`);
    expect(listed.leases.map((l) => [l.state, l.revocation_reason, l.revoked_by])).toEqual([
      ['revoked', 'identity_revoked', admin.identityId],
      ['revoked', 'identity_revoked', admin.identityId],
    ]);
  });

  it('revokes in bulk, and removes a backend and its grants only once no lease is live', async () => {
    const agent = await enrolledAgent(env, `bulk-${dialect}@acme.local`);
    await grant(agent.address, 'readonly', 600);
    const lease = await agent.lease(backend, 'readonly');
    expect(await admin.send('DELETE', `/v1/admin/backends/${backend}`)).toMatchObject({ status: 409, body: { error: 'conflict' } });
    expect(await admin.send('POST', '/v1/admin/leases/revoke', { reason: 'nothing named' })).toMatchObject({ status: 400 });
    const counts = await admin.expect<{ revoked: number; pending: number }>(200, 'POST', '/v1/admin/leases/revoke', { backend, reason: 'rotation' });
    expect(counts.revoked).toBeGreaterThanOrEqual(1);
    expect(counts.pending).toBe(0);
    await loginFails(lease.credential);
    const active = await admin.expect<{ leases: LeaseView[] }>(200, 'GET', `/v1/admin/leases?backend=${backend}&state=active`);
    expect(active.leases).toEqual([]);

    const { grants } = await admin.expect<{ grants: { grant_id: string }[] }>(200, 'GET', `/v1/admin/grants?backend=${backend}`);
    await admin.expect(200, 'DELETE', `/v1/admin/grants/${grants[0]!.grant_id}`);
    expect(await admin.send('DELETE', `/v1/admin/grants/${grants[0]!.grant_id}`)).toMatchObject({ status: 404 });
    expect(await admin.expect(200, 'DELETE', `/v1/admin/backends/${backend}`)).toEqual({ name: backend, removed: true });
    expect(await admin.send('GET', `/v1/admin/backends/${backend}`)).toMatchObject({ status: 404 });
    expect((await audit('backend.removed'))[0]).toMatchObject({ details: { backend, grants_removed: grants.length - 1 } });
  });

  it('keeps the root secret out of the database, the audit trail and every response', async () => {
    const password = decodeURIComponent(new URL(upstream.url).password);
    const events = await audit('backend.added');
    expect(events).toHaveLength(1);
    const everything = await admin.expect(200, 'GET', '/v1/admin/audit?limit=1000');
    const stored = dialect === 'sqlite' ? storedBytesUnder(env.config.dataDir) : await storedRows(env.config.databaseUrl);
    for (const haystack of [JSON.stringify(everything), responseLog.join('\n'), stored]) {
      expect(haystack).not.toContain(password);
      expect(haystack).not.toContain(upstream.url);
    }
    expect(responseLog.length).toBeGreaterThan(20);
  });
});

/** Every byte of every file under the data dir (database, WAL, key store), as latin1 text. */
function storedBytesUnder(dir: string): string {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => readFileSync(join(entry.parentPath, entry.name), 'latin1'))
    .join('\n');
}

async function storedRows(url: string): Promise<string> {
  return withClient(url, async (client) => {
    const tables = ['backends', 'grants', 'leases', 'audit_events', 'settings'];
    const dumps = await Promise.all(tables.map(async (table) => JSON.stringify((await client.query(`SELECT * FROM ${table}`)).rows)));
    return dumps.join('\n');
  });
}
