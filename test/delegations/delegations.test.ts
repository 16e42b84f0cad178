/**
 * Delegation to sub-agents against a real PostgreSQL upstream with a least-privilege (CREATEROLE,
 * no superuser) admin DSN: narrowing at creation and on every use, leases under a chain, the
 * cascade upstream, and offline verification of each delegator's signed request.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ExportRecord } from '../../src/audit/records.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { PROOF_SCHEME } from '../../src/identity/proof.js';
import { iterate, rechain } from '../audit/support.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { adminAgent, enrolledAgent, type IssuedLease, leaseRolesOf, login, loginFails, seedUpstream, sessionIsGone, type TestAgent } from '../support/lease-env.js';
import { createAdminRole, createTestDatabase, withClient } from '../support/postgres.js';

interface Delegation {
  delegation_id: string;
  parent_id: string | null;
  depth: number;
  status: string;
  expires_at: string;
  constraints: Record<string, string>;
}
type DelegatedLease = IssuedLease & { delegation_id: string | null; act: unknown };

const BACKEND = 'ledger';
const MINUTE = 60_000;

describe('delegation to sub-agents (PostgreSQL upstream, CREATEROLE admin)', () => {
  let env: TestBroker;
  let upstream: { url: string; drop(): Promise<void> };
  let admin: TestAgent;
  const sessions: pg.Client[] = [];
  let serial = 0;

  beforeAll(async () => {
    [env, upstream] = await Promise.all([startTestBroker(), createTestDatabase(inject('postgresUrl'))]);
    await seedUpstream(upstream.url);
    const adminRole = await createAdminRole(upstream.url);
    await withClient(upstream.url, (client) =>
      client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${adminRole.name} WITH GRANT OPTION;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${adminRole.name} WITH GRANT OPTION`),
    );
    admin = await adminAgent(env);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: BACKEND, type: 'postgres', connection_url: adminRole.url });
  });
  afterAll(async () => {
    await Promise.all(sessions.map((session) => session.end().catch(() => undefined)));
    await env?.close();
    await upstream?.drop();
  });

  /** Fresh agents for one test: `names` become `<name>-<n>@acme.local`. */
  const agents = async (...names: string[]): Promise<[TestAgent, TestAgent, TestAgent, ...TestAgent[]]> => {
    serial += 1;
    return Promise.all(names.map((name) => enrolledAgent(env, `${name}-${serial}@acme.local`))) as Promise<[TestAgent, TestAgent, TestAgent, ...TestAgent[]]>;
  };
  const grant = (agent: TestAgent, role = 'readonly') =>
    admin.expect<{ grant_id: string }>(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: BACKEND, role, max_ttl_seconds: 3600, default_ttl_seconds: 600 });
  // Each delegation made lasts a minute less than the one before: a sub-delegation ends before its parent.
  let ttlSeconds = 36_000;
  const delegate = (from: TestAgent, to: TestAgent, extra: Record<string, unknown> = {}) =>
    from.send<Delegation & { error?: string }>('POST', '/v1/delegations', { delegatee: to.address, backend: BACKEND, role: 'readonly', ttl_seconds: (ttlSeconds -= 60), purpose: 'nightly report', ...extra });
  const delegated = async (from: TestAgent, to: TestAgent, extra: Record<string, unknown> = {}) => {
    const reply = await delegate(from, to, extra);
    expect(reply, JSON.stringify(reply.body)).toMatchObject({ status: 201 });
    return reply.body;
  };
  const lease = (agent: TestAgent, extra: Record<string, unknown> = {}) => agent.send<DelegatedLease & { error?: string }>('POST', '/v1/leases', { backend: BACKEND, role: 'readonly', ...extra });
  const leased = async (agent: TestAgent, extra: Record<string, unknown> = {}) => {
    const reply = await lease(agent, extra);
    expect(reply, JSON.stringify(reply.body)).toMatchObject({ status: 201 });
    return reply.body;
  };
  const open = async (credential: IssuedLease['credential']) => {
    const session = await login(credential);
    sessions.push(session);
    return session;
  };
  const refused = async (reply: Promise<{ status: number; body: { error?: string } }>, status: number, error: string) =>
    expect(await reply).toMatchObject({ status, body: { error } });

  it('leases through a depth-3 chain, chosen automatically, with the intersection of the chain and the chain in the lease and its audit event', async () => {
    const [root, middle, sub, leaf] = (await agents('root', 'middle', 'sub', 'leaf')) as [TestAgent, TestAgent, TestAgent, TestAgent];
    await grant(root);
    const first = await delegated(root, middle);
    // No parent named: the delegator has no grant of its own, so its one delegation applies.
    const second = await delegated(middle, sub, { ttl_seconds: 1200 });
    const third = await delegated(sub, leaf, { ttl_seconds: 900 });
    expect([first.depth, second.depth, third.depth]).toEqual([1, 2, 3]);
    expect([second.parent_id, third.parent_id]).toEqual([first.delegation_id, second.delegation_id]);

    // TTL capped by the chain's earliest expiry (900 s), not the grant's 3600 s.
    const issued = await leased(leaf, { ttl_seconds: 3000 });
    expect(issued.delegation_id).toBe(third.delegation_id);
    expect(Date.parse(issued.expires_at)).toBe(Date.parse(third.expires_at));
    // RFC 8693: sub = whom the chain acts for; the outermost act the current actor, nested the earlier ones.
    const act = { sub: root.address, act: { sub: leaf.address, act: { sub: sub.address, act: { sub: middle.address } } } };
    expect(issued.act).toEqual(act);
    const session = await open(issued.credential);
    expect((await session.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(2);

    expect(await leaf.expect(200, 'GET', `/v1/leases/${issued.lease_id}`)).toMatchObject({ delegation_id: third.delegation_id, act });
    const { events } = await admin.expect<{ events: { details: Record<string, unknown> }[] }>(200, 'GET', `/v1/admin/audit?action=lease.granted&identity=${leaf.address}`);
    expect(events[0]!.details).toMatchObject({ lease_id: issued.lease_id, delegation_id: third.delegation_id, act });
  });

  it('refuses a wider role, a looser constraint, a later expiry, a depth over the limit and a bad delegatee', async () => {
    const [root, middle, sub, leaf, deeper] = (await agents('root', 'middle', 'sub', 'leaf', 'deeper')) as [TestAgent, TestAgent, TestAgent, TestAgent, TestAgent];
    await grant(root);
    const first = await delegated(root, middle);
    // Wider role: readwrite under a readonly delegation.
    await refused(delegate(middle, sub, { parent: first.delegation_id, role: 'readwrite' }), 403, 'delegation_scope_wider');
    await refused(delegate(middle, sub, { role: 'readwrite' }), 403, 'no_grant');
    // Later expiry than the parent's.
    await refused(delegate(middle, sub, { ttl_seconds: Math.ceil((Date.parse(first.expires_at) - env.clock.now()) / 1000) + 60 }), 403, 'delegation_expiry_later');
    // Depth: 3 is the default limit.
    await delegated(middle, sub);
    await delegated(sub, leaf);
    await refused(delegate(leaf, deeper), 403, 'delegation_depth_exceeded');
    // Only another enrolled agent: not itself, not an admin, not an unknown address.
    await refused(delegate(root, root), 400, 'delegatee_invalid');
    await refused(delegate(root, admin), 400, 'delegatee_invalid');
    await refused(root.send('POST', '/v1/delegations', { delegatee: 'nobody@acme.local', backend: BACKEND, role: 'readonly', ttl_seconds: 60, purpose: 'x' }), 400, 'delegatee_invalid');
    // An admin never leases, so it cannot delegate either.
    await refused(delegate(admin, root), 403, 'role_cannot_lease');
    // A delegation under a lease of the leaf cannot be asked for as another backend/role either.
    await refused(lease(leaf, { role: 'readwrite' }), 403, 'no_grant');
    const { events } = await admin.expect<{ events: { reason: string }[] }>(200, 'GET', `/v1/admin/audit?action=delegation.denied&identity=${middle.address}`);
    expect(events.map((event) => event.reason)).toEqual(expect.arrayContaining(['delegation_scope_wider', 'delegation_expiry_later']));
  });

  it('refuses on use once a link has expired, been revoked, or the root delegator lost its grant', async () => {
    const [root, middle, sub] = await agents('root', 'middle', 'sub');
    const { grant_id } = await grant(root);
    const first = await delegated(root, middle, { ttl_seconds: 600 });
    const second = await delegated(middle, sub, { ttl_seconds: 300 });
    await leased(sub);

    // Lost grant: the chain is still there, but its authority is gone.
    await admin.expect(200, 'DELETE', `/v1/admin/grants/${grant_id}`);
    await refused(lease(sub), 403, 'delegation_authority_lost');
    await refused(delegate(middle, sub, { ttl_seconds: 60 }), 403, 'delegation_authority_lost');
    await grant(root);
    const renewable = await leased(sub);
    expect(renewable.delegation_id).toBe(second.delegation_id);

    // Expired: the sub-agent's link ends first. (Provisioning signs by real time: back to it after.)
    env.clock.advance(5 * MINUTE + 1);
    try {
      await refused(lease(sub, { delegation: second.delegation_id }), 403, 'delegation_expired');
      // An expired delegation no longer applies by itself.
      await refused(lease(sub), 403, 'no_grant');
      // The lease ended with the chain: nothing left to renew.
      await refused(sub.send('POST', `/v1/leases/${renewable.lease_id}/renew`, {}), 409, 'lease_inactive');
    } finally {
      env.clock.release();
    }

    // Revoked parent: the middle agent's own delegation, from the root, is revoked by the root.
    const third = await delegated(middle, sub, { ttl_seconds: 60 });
    await root.expect(200, 'POST', `/v1/delegations/${first.delegation_id}/revoke`, { reason: 'done' });
    await refused(lease(sub, { delegation: third.delegation_id }), 403, 'delegation_revoked');
    await refused(lease(middle), 403, 'no_grant');
  });

  it('chooses the one delegation that applies, asks to name one when several do, and prefers the own grant', async () => {
    const [rootA, rootB, sub] = await agents('root-a', 'root-b', 'sub');
    await grant(rootA);
    await grant(rootB);
    const fromA = await delegated(rootA, sub);
    expect((await leased(sub)).delegation_id).toBe(fromA.delegation_id);
    const fromB = await delegated(rootB, sub);
    await refused(lease(sub), 409, 'delegation_ambiguous');
    expect((await leased(sub, { delegation: fromB.delegation_id })).act).toEqual({ sub: rootB.address, act: { sub: sub.address } });
    // Someone else's delegation is not there to name.
    await refused(lease(rootA, { delegation: fromB.delegation_id }), 404, 'not_found');
    await grant(sub);
    expect((await leased(sub)).delegation_id).toBeNull();
  });

  it('revoking a link revokes every delegation and lease below it upstream, in the same request; so does revoking an identity in the chain', async () => {
    const [root, middle, sub] = await agents('root', 'middle', 'sub');
    await grant(root);
    const first = await delegated(root, middle);
    const second = await delegated(middle, sub);
    const middleLease = await leased(middle);
    const subLeases = [await leased(sub), await leased(sub)];
    const subSession = await open(subLeases[0]!.credential);
    const roles = [middleLease, ...subLeases].map((issued) => issued.credential.username);
    expect(await leaseRolesOf(upstream.url, BACKEND)).toEqual(expect.arrayContaining(roles));

    const revoked = await root.expect<{ delegations_revoked: number; leases: { revoked: number; pending: number } }>(200, 'POST', `/v1/delegations/${first.delegation_id}/revoke`, { reason: 'task done' });
    expect(revoked).toMatchObject({ delegations_revoked: 2, leases: { revoked: 3, pending: 0 } });
    expect(await leaseRolesOf(upstream.url, BACKEND)).not.toEqual(expect.arrayContaining([roles[0]]));
    for (const role of roles) expect(await leaseRolesOf(upstream.url, BACKEND)).not.toContain(role);
    expect(await sessionIsGone(subSession)).toBe(true);
    await loginFails(subLeases[1]!.credential);
    const shown = await admin.expect<{ delegation: Delegation; chain: Delegation[] }>(200, 'GET', `/v1/delegations/${second.delegation_id}`);
    expect(shown.delegation.status).toBe('revoked');
    expect(shown.chain.map((link) => link.delegation_id)).toEqual([first.delegation_id, second.delegation_id]);
    // Revoked means revoked: nothing comes back on the next use.
    await refused(lease(sub, { delegation: second.delegation_id }), 403, 'delegation_revoked');
    await refused(lease(sub), 403, 'no_grant');

    // An identity in the middle of a chain: the chain below it goes, with its leases.
    const [root2, middle2, sub2] = await agents('root', 'middle', 'sub');
    await grant(root2);
    await delegated(root2, middle2);
    const below = await delegated(middle2, sub2);
    const subLease = await leased(sub2);
    const cut = await admin.expect<{ delegations: { revoked: number; leases: { revoked: number } } }>(200, 'POST', `/v1/admin/identities/${middle2.address}/revoke`, { reason: 'compromised' });
    expect(cut.delegations).toMatchObject({ revoked: 2, leases: { revoked: 1 } });
    expect(await leaseRolesOf(upstream.url, BACKEND)).not.toContain(subLease.credential.username);
    expect((await admin.expect<{ delegation: Delegation }>(200, 'GET', `/v1/delegations/${below.delegation_id}`)).delegation.status).toBe('revoked');
  });

  it('refuses a lease on the very next request once an identity in the middle of the chain is suspended or revoked (the chain reads identities through the change-fed cache)', async () => {
    const [root, middle, sub] = await agents('root', 'middle', 'sub');
    await grant(root);
    await delegated(root, middle);
    const below = await delegated(middle, sub);
    // Every identity of the chain is now cached as active.
    await leased(sub);

    // A suspected clone of the middle agent: its status changes, its delegations stay active.
    expect((await middle.startSession({ generation: 1 })).reply.status).toBe(201);
    expect((await middle.startSession({ generation: 1 })).reply).toMatchObject({ status: 403, body: { error: 'identity_suspended' } });
    await refused(lease(sub), 403, 'delegation_revoked');
    await admin.expect(200, 'POST', `/v1/admin/identities/${middle.address}/reinstate`, { reason: 'one copy left' });
    expect((await leased(sub)).delegation_id).toBe(below.delegation_id);

    await admin.expect(200, 'POST', `/v1/admin/identities/${middle.address}/revoke`, { reason: 'compromised' });
    await refused(lease(sub, { delegation: below.delegation_id }), 403, 'delegation_revoked');
  });

  it('verifies every delegator\'s signed request offline, and fails evidence altered even with the chain re-hashed', async () => {
    const [root, middle, sub] = await agents('root', 'middle', 'sub');
    await grant(root);
    await delegated(root, middle, { purpose: 'audit me' });
    await delegated(middle, sub, { purpose: 'audit me too' });
    const path = '/v1/admin/audit/export';
    const response = await fetch(env.url + path, { headers: { authorization: `${PROOF_SCHEME} ${await admin.proof('GET', path)}` } });
    const records = (await response.text()).trimEnd().split('\n').map((line) => JSON.parse(line) as ExportRecord);
    const report = await verifyAuditLog(iterate(records));
    expect(report).toMatchObject({ ok: true, problem: null });
    expect(report.delegations).toBeGreaterThanOrEqual(2);

    // An insider with database access widens a recorded delegation and recomputes every hash after
    // it (and drops checkpoints): the chain is consistent again, but the delegator's proof is not.
    const tampered = rechain(records, (events) =>
      events.map((event) => (event.action === 'delegation.created' && (event.details as { purpose?: string }).purpose === 'audit me too' ? { ...event, details: { ...event.details, role: 'readwrite' } } : event)),
    );
    const bad = await verifyAuditLog(iterate(tampered));
    expect(bad).toMatchObject({ ok: false, problem: { code: 'delegation_evidence' } });
    expect(bad.problem!.message).toContain('role');

    const bodySwapped = rechain(records, (events) =>
      events.map((event) => (event.action === 'delegation.created' && (event.details as { purpose?: string }).purpose === 'audit me' ? { ...event, details: { ...event.details, request_body: '{}' } } : event)),
    );
    expect(await verifyAuditLog(iterate(bodySwapped))).toMatchObject({ ok: false, problem: { code: 'delegation_evidence' } });
  });
});
