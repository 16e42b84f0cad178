/**
 * Acting for a user, end to end on a real broker: an admin trusts a local jose issuer, an agent
 * presents a user's token with its own proof and gets a delegation rooted at the user, then leases
 * a real PostgreSQL role through it. A grant requiring a user claim refuses direct leases and users
 * without the claim; the audit names the chain in nested-`act` form and filters on it
 * (`on_behalf_of`), and never holds the raw token.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ExportRecord } from '../../src/audit/records.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { PROOF_SCHEME } from '../../src/identity/proof.js';
import { startTestBroker, type TestBroker, type TestDialect } from '../support/broker.js';
import { type LocalIssuer, startLocalIssuer } from '../support/issuer.js';
import { adminAgent, enrolledAgent, login, seedUpstream, type TestAgent } from '../support/lease-env.js';
import { createTestDatabase } from '../support/postgres.js';

interface AuditEvent {
  action: string;
  outcome: string;
  reason: string | null;
  details: Record<string, unknown>;
}

describe.each<TestDialect>(['sqlite', 'postgres'])('acting for a user (%s store)', (dialect) => {
  let env: TestBroker;
  let admin: TestAgent;
  let agent: TestAgent;
  let helper: TestAgent;
  let issuer: LocalIssuer;
  let upstream: { url: string; drop(): Promise<void> };
  const tokens: string[] = [];

  const token = async (sub: string, options: Parameters<LocalIssuer['token']>[2] = {}) => {
    const issued = await issuer.token(sub, env.clock.now(), options);
    tokens.push(issued);
    return issued;
  };
  const actFor = (userToken: string, extra: Record<string, unknown> = {}) =>
    agent.send<Record<string, any>>('POST', '/v1/delegations/user', { token: userToken, backend: 'db', role: 'readonly', ttl_seconds: 3600, purpose: 'answer a support ticket', ...extra });
  const audit = async (query: string) => (await admin.expect<{ events: AuditEvent[] }>(200, 'GET', `/v1/admin/audit?limit=1000&${query}`)).events;

  beforeAll(async () => {
    upstream = await createTestDatabase(inject('postgresUrl'));
    await seedUpstream(upstream.url);
    [env, issuer] = await Promise.all([startTestBroker({ dialect }), startLocalIssuer('ES256')]);
    admin = await adminAgent(env);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'db', type: 'postgres', connection_url: upstream.url });
    agent = await enrolledAgent(env, 'support-bot@acme.local');
    helper = await enrolledAgent(env, 'helper-bot@acme.local');
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    await issuer?.close();
    await upstream?.drop();
  });

  it('an admin trusts the issuer: exact profile back, audited; bad profiles are refused and change nothing', async () => {
    const added = await admin.expect(201, 'POST', '/v1/admin/trust/issuers', { issuer: issuer.issuer, audience: issuer.audience, jwks_url: issuer.jwksUrl, required_claims: { email_verified: 'true' } });
    expect(added).toEqual({
      issuer: issuer.issuer,
      audience: issuer.audience,
      algorithms: ['EdDSA', 'ES256', 'RS256'],
      jwks_url: issuer.jwksUrl,
      static_kids: null,
      required_claims: { email_verified: 'true' },
      created_at: expect.any(String),
    });
    expect(await audit('action=issuer.trusted')).toEqual([expect.objectContaining({ outcome: 'success', details: expect.objectContaining({ issuer: issuer.issuer, jwks_url: issuer.jwksUrl }) })]);

    const refused = async (body: Record<string, unknown>, status: number, error: string, message: RegExp) => {
      const reply = await admin.send('POST', '/v1/admin/trust/issuers', { issuer: 'https://idp.example', audience: 'a', ...body });
      expect(reply).toMatchObject({ status, body: { error, message: expect.stringMatching(message) } });
    };
    await refused({ issuer: issuer.issuer, jwks_url: issuer.jwksUrl }, 409, 'conflict', /is trusted already/);
    await refused({ jwks_url: 'http://idp.example/jwks.json' }, 400, 'invalid_request', /must use https \(http only on a loopback address\)/);
    await refused({ jwks: { keys: [{ ...issuer.jwks().keys[0], d: 'c2VjcmV0' }] } }, 400, 'invalid_request', /holds a private key/);
    await refused({ jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }, 400, 'invalid_request', /public OKP, EC or RSA JWK/);
    await refused({ jwks_url: 'https://idp.example/jwks.json', jwks: issuer.jwks() }, 400, 'invalid_request', /exactly one of jwks_url/);
    await refused({ jwks_url: 'https://idp.example/jwks.json', algorithms: ['HS256'] }, 400, 'invalid_request', /algorithms/);
    await refused({ jwks_url: 'https://idp.example/jwks.json', algorithms: ['none'] }, 400, 'invalid_request', /algorithms/);
    expect((await admin.expect<{ issuers: unknown[] }>(200, 'GET', '/v1/admin/trust/issuers')).issuers).toEqual([added]);
    expect(await agent.send('GET', '/v1/admin/trust/issuers')).toMatchObject({ status: 403, body: { error: 'forbidden' } });
    expect(await admin.send('DELETE', `/v1/admin/trust/issuers?issuer=${encodeURIComponent('https://idp.example')}`)).toMatchObject({ status: 404, body: { error: 'not_found' } });
  });

  it('a grant requiring groups=support: no direct lease; a support user\'s delegation leases a real role, with the chain in audit', async () => {
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: 'db', role: 'readonly', max_ttl_seconds: 3600, required_user_claims: { groups: 'support' } });
    expect(await agent.send('POST', '/v1/leases', { backend: 'db', role: 'readonly' })).toMatchObject({ status: 403, body: { error: 'user_claim_required', message: expect.stringContaining('acts for no user') } });
    // Nor through a sub-agent: a chain rooted at the agent itself acts for no user either.
    const handOff = await agent.send('POST', '/v1/delegations', { delegatee: helper.address, backend: 'db', role: 'readonly', ttl_seconds: 300, purpose: 'launder the grant' });
    expect(handOff).toMatchObject({ status: 403, body: { error: 'user_claim_required' } });

    const alice = await token('alice', { claims: { email_verified: true, groups: ['staff', 'support'] }, exp: 900 });
    const created = await actFor(alice);
    expect(created).toMatchObject({ status: 201, body: { acting_for: { iss: issuer.issuer, sub: 'alice' }, delegatee: agent.address, backend: 'db', role: 'readonly', purpose: 'answer a support ticket', token_sha256: expect.any(String) } });
    // Asked for an hour; the token vouches for 15 minutes (its own exp: the clock may have ticked into the next second since).
    expect(Date.parse(created.body.expires_at)).toBe(decodeJwt(alice).exp! * 1000);

    const lease = await agent.lease('db', 'readonly');
    expect(Date.parse(lease.expires_at)).toBeLessThanOrEqual(Date.parse(created.body.expires_at));
    const session = await login(lease.credential);
    await session.end();

    const chain = { iss: issuer.issuer, sub: 'alice', act: { sub: agent.address } };
    const granted = await audit('action=lease.granted');
    expect(granted.at(-1)!.details).toMatchObject({ lease_id: lease.lease_id, delegation_id: created.body.delegation_id, act: chain });
    const forAlice = await audit('on_behalf_of=alice');
    expect(forAlice.map((event) => event.action)).toEqual(['delegation.created', 'lease.granted']);
    expect(forAlice[0]!.details).toMatchObject({ root_kind: 'user', delegator_user: { iss: issuer.issuer, sub: 'alice' }, act: chain });
    expect(await audit('on_behalf_of=bob')).toEqual([]);
  });

  it('a user without the required claim, or a token failing the profile, gets no delegation (audited, token only hashed)', async () => {
    const sales = await actFor(await token('bob', { claims: { email_verified: true, groups: ['sales'] } }));
    expect(sales).toMatchObject({ status: 403, body: { error: 'user_claim_required', message: expect.stringContaining('requires a user with groups=support; user bob') } });
    const unverified = await actFor(await token('carol', { claims: { email_verified: false, groups: ['support'] } }));
    expect(unverified).toMatchObject({ status: 403, body: { error: 'user_token_invalid', message: expect.stringContaining('lacks the claim email_verified=true') } });
    const wrongAudience = await actFor(await token('dave', { claims: { aud: 'https://elsewhere.test', email_verified: true, groups: ['support'] } }));
    expect(wrongAudience).toMatchObject({ status: 403, body: { error: 'user_token_invalid' } });
    const wider = await actFor(await token('erin', { claims: { email_verified: true, groups: ['support'] } }), { backend: 'other' });
    expect(wider).toMatchObject({ status: 403, body: { error: 'no_grant' } });

    const denied = await audit('action=delegation.denied');
    // The first is the agent's hand-off to a sub-agent in the test before.
    expect(denied.map((event) => event.reason)).toEqual(['user_claim_required', 'user_claim_required', 'user_token_invalid', 'user_token_invalid', 'no_grant']);
    expect(denied[1]!.details).toMatchObject({ root_kind: 'user', delegator_user: { sub: 'bob' }, token_sha256: expect.any(String) });
    expect(denied[2]!.details).not.toHaveProperty('delegator_user');
    expect(await audit('on_behalf_of=bob')).toEqual([]);
  });

  it('an agent with two grants for the role, one requiring a user claim: each use is anchored on the grant it can use', async () => {
    const twin = await enrolledAgent(env, `twin-bot-${dialect}@acme.local`);
    const grantOf = async (body: Record<string, unknown>) =>
      (await admin.expect<{ grant_id: string }>(201, 'POST', '/v1/admin/grants', { subject: twin.address, backend: 'db', role: 'readonly', ...body })).grant_id;
    const plain = await grantOf({ max_ttl_seconds: 600 });
    // The more generous one (the order grants are otherwise picked in) requires a support user.
    const forSupport = await grantOf({ max_ttl_seconds: 3600, required_user_claims: { groups: 'support' } });
    const grantOfLease = async (leaseId: string) => (await audit('action=lease.granted')).find((event) => event.details.lease_id === leaseId)!.details.grant_id;
    const actAs = (userToken: string) => twin.send<Record<string, any>>('POST', '/v1/delegations/user', { token: userToken, backend: 'db', role: 'readonly', ttl_seconds: 3600, purpose: 'two grants' });

    // For itself: the plain grant, not a refusal for want of a user.
    const own = await twin.lease('db', 'readonly');
    expect(await grantOfLease(own.lease_id)).toBe(plain);
    // For a user without the claim: inside the plain grant.
    const bob = await actAs(await token('bob', { claims: { email_verified: true, groups: ['sales'] } }));
    expect(bob, JSON.stringify(bob.body)).toMatchObject({ status: 201 });
    const forBob = await twin.expect<{ lease_id: string }>(201, 'POST', '/v1/leases', { backend: 'db', role: 'readonly', delegation: bob.body.delegation_id });
    expect(await grantOfLease(forBob.lease_id)).toBe(plain);
    // For a support user: the grant that requires one.
    const alice = await actAs(await token('alice', { claims: { email_verified: true, groups: ['support'] } }));
    expect(alice, JSON.stringify(alice.body)).toMatchObject({ status: 201 });
    const forAlice = await twin.expect<{ lease_id: string }>(201, 'POST', '/v1/leases', { backend: 'db', role: 'readonly', delegation: alice.body.delegation_id, ttl_seconds: 1800 });
    expect(await grantOfLease(forAlice.lease_id)).toBe(forSupport);

    // Without the plain grant, bob's delegation has no grant it can use; alice's keeps its own.
    await admin.expect(200, 'DELETE', `/v1/admin/grants/${plain}`);
    expect(await twin.send('POST', '/v1/leases', { backend: 'db', role: 'readonly', delegation: bob.body.delegation_id })).toMatchObject({ status: 403, body: { error: 'user_claim_required' } });
    await twin.expect(201, 'POST', '/v1/leases', { backend: 'db', role: 'readonly', delegation: alice.body.delegation_id });
  });

  it('a user\'s chain through an agent suspended as a suspected clone is refused on the very next request', async () => {
    const [actor, sub] = await Promise.all([enrolledAgent(env, `chain-bot-${dialect}@acme.local`), enrolledAgent(env, `chain-sub-${dialect}@acme.local`)]);
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: actor.address, backend: 'db', role: 'readonly', max_ttl_seconds: 3600 });
    const root = await actor.send<Record<string, any>>('POST', '/v1/delegations/user', { token: await token('grace', { claims: { email_verified: true } }), backend: 'db', role: 'readonly', ttl_seconds: 600, purpose: 'chain' });
    expect(root, JSON.stringify(root.body)).toMatchObject({ status: 201 });
    await actor.expect(201, 'POST', '/v1/delegations', { delegatee: sub.address, backend: 'db', role: 'readonly', ttl_seconds: 300, purpose: 'hand-off', parent: root.body.delegation_id });
    // The chain's identities are cached as active now.
    await sub.lease('db', 'readonly');

    expect((await actor.startSession({ generation: 1 })).reply.status).toBe(201);
    expect((await actor.startSession({ generation: 1 })).reply).toMatchObject({ status: 403, body: { error: 'identity_suspended' } });
    expect(await sub.send('POST', '/v1/leases', { backend: 'db', role: 'readonly' })).toMatchObject({ status: 403, body: { error: 'delegation_revoked' } });
  });

  it('the delegation ends with the token: after its exp no lease through it', async () => {
    env.clock.advance(901_000);
    expect(await agent.send('POST', '/v1/leases', { backend: 'db', role: 'readonly' })).toMatchObject({ status: 403 });
    env.clock.advance(-901_000);
  });

  it('removing the issuer refuses its tokens from the next request on', async () => {
    await admin.expect(200, 'DELETE', `/v1/admin/trust/issuers?issuer=${encodeURIComponent(issuer.issuer)}`);
    const reply = await actFor(await token('frank', { claims: { email_verified: true, groups: ['support'] } }));
    expect(reply).toMatchObject({ status: 403, body: { error: 'issuer_unknown' } });
    expect(await audit('action=issuer.removed')).toHaveLength(1);
  });

  it('no raw user token anywhere in the audit log', async () => {
    const everything = JSON.stringify(await audit('order=asc'));
    expect(tokens.length).toBeGreaterThan(5);
    for (const raw of tokens) expect(everything).not.toContain(raw.split('.')[2]);
  });

  it('the exported audit log, user delegations included, verifies offline', async () => {
    const path = '/v1/admin/audit/export';
    const response = await fetch(env.url + path, { headers: { authorization: `${PROOF_SCHEME} ${await admin.proof('GET', path)}` } });
    const records = (await response.text()).trimEnd().split('\n').map((line) => JSON.parse(line) as ExportRecord);
    expect(records.some((record) => record.type === 'event' && record.action === 'delegation.created')).toBe(true);
    await expect(verifyAuditLog((async function* () { yield* records; })())).resolves.toMatchObject({ ok: true, problem: null });
  });
});
