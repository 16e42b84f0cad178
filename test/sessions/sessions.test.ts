/**
 * Session keys against a real broker (SoftHSM2 keys, SQLite and PostgreSQL): registration, session
 * proofs, expiry, revocation, clone detection and offline audit verification (docs/PROTOCOL.md §3.1).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSessionCertificate, memorySessionSigner, type Signer } from '@tessera-broker/sdk';
import { Readable } from 'node:stream';
import type { JSONWebKeySet } from 'jose';
import { fromJsonLines } from '../../src/audit/jsonl.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { startTestBroker, type TestBroker, type TestDialect } from '../support/broker.js';
import { adminAgent, enrolledAgent, type TestAgent } from '../support/lease-env.js';

describe.each<TestDialect>(['sqlite', 'postgres'])('session keys (%s)', (dialect) => {
  let env: TestBroker;
  let admin: TestAgent;
  let generation = 1;
  const nextGeneration = () => ++generation;

  const events = (identityId: string, action: string) =>
    admin.expect<{ events: { action: string; reason: string | null; details: Record<string, unknown>; proof: string | null }[] }>(200, 'GET', `/v1/admin/audit?identity=${identityId}&action=${action}`);

  /** `tessera audit verify --file`: the admin export, checked offline against the broker's JWKS. */
  async function verifyExport(edit: (record: Record<string, unknown>) => Record<string, unknown> = (record) => record) {
    const [exported, jwks] = await Promise.all([
      fetchExport(),
      fetch(`${env.url}/.well-known/jwks.json`).then((response) => response.json() as Promise<JSONWebKeySet>),
    ]);
    const lines = exported.trim().split('\n').map((line) => JSON.stringify(edit(JSON.parse(line) as Record<string, unknown>)));
    return verifyAuditLog(fromJsonLines(Readable.from(lines.join('\n'))), { jwks });
  }

  async function fetchExport(): Promise<string> {
    const proof = await admin.proof('GET', '/v1/admin/audit/export');
    const response = await fetch(`${env.url}/v1/admin/audit/export`, { headers: { authorization: `Proof ${proof}` } });
    expect(response.status).toBe(200);
    return response.text();
  }

  /** The agent's primary key, through the key store as its node would open it. */
  async function primaryKeyOf(agent: TestAgent): Promise<Signer> {
    const { key_uri } = await admin.expect<{ key_uri: string }>(200, 'GET', `/v1/admin/identities/${agent.address}`);
    return env.keyStores.signer(key_uri);
  }

  beforeAll(async () => {
    env = await startTestBroker({ dialect });
    admin = await adminAgent(env);
  }, 120_000);
  afterAll(async () => {
    await env?.close();
  });

  it('registers a session with a primary-key proof; later proofs signed by the session key are accepted and stored', async () => {
    const agent = await enrolledAgent(env, `s-issue-${dialect}@test.local`);
    const { reply, session } = await agent.startSession({ generation: nextGeneration(), lifetimeSeconds: 600 });
    expect(reply.status).toBe(201);
    expect(reply.body.session_id).toMatch(/^ses_[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(reply.body.expires_at) - Date.parse(reply.body.issued_at)).toBe(600_000);

    const whoami = await agent.withSession(session).expect<{ identity_id: string }>(200, 'GET', '/v1/whoami');
    expect(whoami.identity_id).toBe(agent.identityId);
    // Primary-key proofs keep working alongside.
    await agent.expect(200, 'GET', '/v1/whoami');

    const [registered] = (await events(agent.identityId, 'session.registered')).events;
    expect(registered!.details).toMatchObject({ session_id: session.id, generation });
  });

  it('refuses a replayed session proof, a session proof for registering sessions, and an unknown session', async () => {
    const agent = await enrolledAgent(env, `s-replay-${dialect}@test.local`);
    const { session } = await agent.startSession({ generation: nextGeneration() });
    const viaSession = agent.withSession(session);
    const proof = await viaSession.proof('GET', '/v1/whoami');
    expect((await viaSession.send('GET', '/v1/whoami', undefined, proof)).status).toBe(200);
    expect(await viaSession.send('GET', '/v1/whoami', undefined, proof)).toMatchObject({ status: 401, body: { error: 'proof_replayed' } });

    // A session key cannot certify further sessions: registration needs the primary key.
    const other = memorySessionSigner();
    const { reply } = await viaSession.startSession({ generation: nextGeneration(), certifiedBy: other });
    expect(reply).toMatchObject({ status: 400, body: { error: 'session_certificate_invalid' } });
    const certificateBody = { certificate: 'x' };
    expect(await viaSession.send('POST', '/v1/sessions', certificateBody)).toMatchObject({ status: 403, body: { error: 'forbidden' } });

    const unknown = agent.withSession({ id: `ses_${'A'.repeat(43)}`, signer: other });
    expect(await unknown.send('GET', '/v1/whoami')).toMatchObject({ status: 401, body: { error: 'session_unknown' } });
  });

  it('refuses a certificate signed by another key, one whose lifetime exceeds the maximum, and a stale one', async () => {
    const agent = await enrolledAgent(env, `s-bad-${dialect}@test.local`);
    const foreign = await enrolledAgent(env, `s-foreign-${dialect}@test.local`);
    const stranger = memorySessionSigner();
    const signedByStranger = await agent.startSession({ generation: nextGeneration(), certifiedBy: stranger });
    expect(signedByStranger.reply).toMatchObject({ status: 400, body: { error: 'session_certificate_invalid' } });
    expect(signedByStranger.reply.body).toMatchObject({ message: expect.stringContaining('signature') });

    const tooLong = await agent.startSession({ generation: nextGeneration(), lifetimeSeconds: 15 * 60 + 1 });
    expect(tooLong.reply).toMatchObject({ status: 400, body: { error: 'session_certificate_invalid', message: expect.stringContaining('exceeds the maximum of 900 s') } });

    // A certificate the other agent signed about itself, presented by this agent: not this identity's.
    const key = memorySessionSigner();
    const iat = Math.floor(env.clock.now() / 1000);
    const theirs = await createSessionCertificate(await primaryKeyOf(foreign), foreign.identityId, key.publicKey, { iat, exp: iat + 60, gen: nextGeneration() });
    expect(await agent.send('POST', '/v1/sessions', { certificate: theirs })).toMatchObject({ status: 400, body: { error: 'session_certificate_invalid' } });
    // Signed two minutes ago: a certificate is registered fresh, like a proof.
    const stale = await createSessionCertificate(await primaryKeyOf(agent), agent.identityId, key.publicKey, { iat: iat - 120, exp: iat + 60, gen: nextGeneration() });
    expect(await agent.send('POST', '/v1/sessions', { certificate: stale })).toMatchObject({ status: 400, body: { error: 'session_certificate_invalid', message: expect.stringContaining('iat') } });

    const rejected = (await events(agent.identityId, 'session.rejected')).events;
    expect(rejected).toHaveLength(4);
    expect(rejected.every((event) => event.reason === 'session_certificate_invalid')).toBe(true);
  });

  it('refuses an expired session with session_expired, then a new session works', async () => {
    const agent = await enrolledAgent(env, `s-expiry-${dialect}@test.local`);
    const { session } = await agent.startSession({ generation: nextGeneration(), lifetimeSeconds: 120 });
    await agent.withSession(session).expect(200, 'GET', '/v1/whoami');
    env.clock.advance(120_000);
    try {
      expect(await agent.withSession(session).send('GET', '/v1/whoami')).toMatchObject({ status: 401, body: { error: 'session_expired' } });
      const [refusal] = (await events(agent.identityId, 'proof.rejected')).events;
      expect(refusal).toMatchObject({ reason: 'session_expired', details: { session_id: session.id } });
      const renewed = await agent.startSession({ generation: nextGeneration() });
      await agent.withSession(renewed.session).expect(200, 'GET', '/v1/whoami');
    } finally {
      env.clock.advance(-120_000);
    }
  });

  it('revoking the identity ends all its sessions on their next request', async () => {
    const agent = await enrolledAgent(env, `s-revoke-${dialect}@test.local`);
    const first = await agent.startSession({ generation: nextGeneration() });
    const second = await agent.startSession({ generation: nextGeneration() });
    await agent.withSession(first.session).expect(200, 'GET', '/v1/whoami');
    await agent.withSession(second.session).expect(200, 'GET', '/v1/whoami');
    await admin.expect(200, 'POST', `/v1/admin/identities/${agent.address}/revoke`, { reason: 'test' });
    for (const { session } of [first, second]) {
      expect(await agent.withSession(session).send('GET', '/v1/whoami')).toMatchObject({ status: 401, body: { error: 'session_revoked' } });
    }
    expect(await agent.startSession({ generation: nextGeneration() }).then((started) => started.reply)).toMatchObject({ status: 403, body: { error: 'identity_revoked' } });
  });

  it.each([
    ['a lower generation than already seen', 'generation_lower', (gen: number) => gen - 1],
    ['the generation of a live session', 'generation_reused', (gen: number) => gen],
  ])('suspends the identity on %s, audits identity.clone_suspected, and an admin can reinstate it', async (_case, reason, cloneGeneration) => {
    const agent = await enrolledAgent(env, `s-clone-${reason}-${dialect}@test.local`);
    const gen = nextGeneration();
    nextGeneration();
    const original = await agent.startSession({ generation: gen });
    await agent.withSession(original.session).expect(200, 'GET', '/v1/whoami');

    const clone = await agent.startSession({ generation: cloneGeneration(gen) });
    expect(clone.reply).toMatchObject({ status: 403, body: { error: 'identity_suspended' } });
    expect(await admin.expect(200, 'GET', `/v1/admin/identities/${agent.address}`)).toMatchObject({ status: 'suspended' });
    const [suspected] = (await events(agent.identityId, 'identity.clone_suspected')).events;
    expect(suspected).toMatchObject({ reason, details: { generation: cloneGeneration(gen), highest_generation: gen, sessions_ended: 1 } });
    // Deny by default: the original's session and its primary key are refused while suspended.
    expect(await agent.withSession(original.session).send('GET', '/v1/whoami')).toMatchObject({ status: 401, body: { error: 'session_revoked' } });
    expect(await agent.send('GET', '/v1/whoami')).toMatchObject({ status: 403, body: { error: 'identity_suspended' } });
    expect(await agent.send('POST', '/v1/leases', { backend: 'none', role: 'none' })).toMatchObject({ status: 403, body: { error: 'identity_suspended' } });

    await admin.expect(200, 'POST', `/v1/admin/identities/${agent.address}/reinstate`, { reason: 'one copy left' });
    await agent.expect(200, 'GET', '/v1/whoami');
    // Sessions ended by the suspension stay ended; a new, higher generation works.
    expect(await agent.withSession(original.session).send('GET', '/v1/whoami')).toMatchObject({ status: 401, body: { error: 'session_revoked' } });
    const fresh = await agent.startSession({ generation: nextGeneration() });
    await agent.withSession(fresh.session).expect(200, 'GET', '/v1/whoami');
  });

  it('audit verify proves offline who signed each session proof, and fails on a tampered certificate', async () => {
    const agent = await enrolledAgent(env, `s-audit-${dialect}@test.local`);
    const { session } = await agent.startSession({ generation: nextGeneration() });
    // An audited request signed by the session key: its event stores the session proof.
    expect(await agent.withSession(session).send('GET', '/v1/admin/identities')).toMatchObject({ status: 403, body: { error: 'forbidden' } });
    const [forbidden] = (await events(agent.identityId, 'request.forbidden')).events;
    const header = JSON.parse(Buffer.from(forbidden!.proof!.split('.')[0]!, 'base64url').toString()) as { kid: string };
    expect(header.kid).toBe(session.id);

    const report = await verifyExport();
    expect(report).toMatchObject({ ok: true, problem: null });
    expect(report.proofs).toBeGreaterThan(0);

    // The stored certificate with another generation: no longer what the primary key signed.
    const tampered = await verifyExport((record) => {
      if (record.type !== 'session' || record.session_id !== session.id) return record;
      const [h, payload, signature] = (record.certificate as string).split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { gen: number };
      return { ...record, certificate: [h, Buffer.from(JSON.stringify({ ...claims, gen: claims.gen + 1 })).toString('base64url'), signature].join('.') };
    });
    expect(tampered).toMatchObject({ ok: false, problem: { code: 'session_certificate_invalid' } });
    // Without its certificate, a session proof proves nothing.
    const dropped = await verifyExport((record) => (record.type === 'session' && record.session_id === session.id ? { type: 'session', session_id: 'other', identity_id: agent.identityId, certificate: '' } : record));
    expect(dropped).toMatchObject({ ok: false, problem: { code: 'session_unknown' } });
  });
});
