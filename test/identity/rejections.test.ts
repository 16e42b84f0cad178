import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64url } from '../../src/crypto/encoding.js';
import { createProof, PROOF_MAX_SKEW_SECONDS, PROOF_TYPE } from '../../src/identity/proof.js';
import { signCompactJws } from '@tessera-broker/sdk';
import type { Signer } from '../../src/keys/key-store.js';
import { startTestBroker, type TestBroker, type TestDialect } from '../support/broker.js';
import { rejectionsSince } from '../support/rejections.js';

interface Reply {
  status: number;
  body: { error?: string; message?: string };
  wwwAuthenticate: string | null;
}

describe.each<TestDialect>(['sqlite', 'postgres'])('rejections (%s store)', (dialect) => {
  let env: TestBroker;
  let seq = 0;
  beforeAll(async () => {
    env = await startTestBroker({ dialect });
  });
  afterAll(() => env?.close());

  /** Sends `proof` (or none) exactly as given, so tests can hand-craft bad ones. */
  async function send(method: string, path: string, proof: string | undefined, body?: string): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (proof !== undefined) headers.authorization = `Proof ${proof}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(env.url + path, { method, headers, body });
    return { status: response.status, body: (await response.json()) as Reply['body'], wwwAuthenticate: response.headers.get('www-authenticate') };
  }

  const proofFor = (signer: Signer, kid: string, method: string, path: string, body = '', overrides: { aud?: string; iat?: number; url?: string } = {}) =>
    createProof(signer, kid, overrides.aud ?? env.url, { method, url: overrides.url ?? env.url + path, body }, overrides.iat);

  async function enrolledAgent() {
    const provisioned = await env.provision(`agent-${dialect}-${++seq}@acme.local`);
    const signer = await env.keyStores.signer(provisioned.key_uri);
    const body = JSON.stringify({ ticket: provisioned.ticket });
    const enrolled = await send('POST', '/v1/enroll', await proofFor(signer, provisioned.identity_id, 'POST', '/v1/enroll', body), body);
    expect(enrolled.status).toBe(200);
    return { ...provisioned, signer };
  }

  async function deniedReasons(identityId: string | null, action = 'proof.rejected'): Promise<string[]> {
    const { events } = await env.admin.request<{ events: { reason: string; identity_id: string | null; details: { claimed_kid?: string } }[] }>(
      'GET',
      `/v1/admin/audit?action=${action}&limit=1000`,
    );
    return events.filter((e) => e.identity_id === identityId || e.details.claimed_kid === identityId).map((e) => e.reason);
  }

  describe('enrollment tickets', () => {
    it('accepts a ticket once; a second redemption is rejected and audited', async () => {
      const agent = await enrolledAgent();
      const body = JSON.stringify({ ticket: agent.ticket });
      const again = await send('POST', '/v1/enroll', await proofFor(agent.signer, agent.identity_id, 'POST', '/v1/enroll', body), body);
      expect(again).toMatchObject({ status: 403, body: { error: 'ticket_used' } });
      expect(await deniedReasons(agent.identity_id, 'ticket.rejected')).toEqual(['ticket_used']);
    });

    it('rejects an expired ticket and leaves the identity pending', async () => {
      const provisioned = await env.provision(`expiring-${dialect}@acme.local`);
      const signer = await env.keyStores.signer(provisioned.key_uri);
      env.clock.advance(10 * 60_000 + 1000);
      try {
        const body = JSON.stringify({ ticket: provisioned.ticket });
        // The proof must be fresh by the broker's (moved) clock; the ticket is not.
        const fresh = await proofFor(signer, provisioned.identity_id, 'POST', '/v1/enroll', body, { iat: Math.floor(env.clock.now() / 1000) });
        expect(await send('POST', '/v1/enroll', fresh, body)).toMatchObject({ status: 403, body: { error: 'ticket_expired' } });
      } finally {
        env.clock.advance(-(10 * 60_000 + 1000));
      }
      const shown = await env.admin.request<{ status: string }>('GET', `/v1/admin/identities/${encodeURIComponent(`expiring-${dialect}@acme.local`)}`);
      expect(shown.status).toBe('pending');
    });

    it('lets exactly one of two concurrent redemptions win', async () => {
      const provisioned = await env.provision(`racer-${dialect}@acme.local`);
      const signer = await env.keyStores.signer(provisioned.key_uri);
      const body = JSON.stringify({ ticket: provisioned.ticket });
      const proofs = await Promise.all([1, 2, 3, 4].map(() => proofFor(signer, provisioned.identity_id, 'POST', '/v1/enroll', body)));
      const replies = await Promise.all(proofs.map((proof) => send('POST', '/v1/enroll', proof, body)));
      expect(replies.filter((r) => r.status === 200)).toHaveLength(1);
      expect(replies.filter((r) => r.body.error === 'ticket_used')).toHaveLength(3);
    });

    it('makes a stolen ticket useless without the identity key', async () => {
      const victim = await env.provision(`victim-${dialect}@acme.local`);
      const thief = await enrolledAgent();
      const body = JSON.stringify({ ticket: victim.ticket });
      const stolen = await send('POST', '/v1/enroll', await proofFor(thief.signer, thief.identity_id, 'POST', '/v1/enroll', body), body);
      expect(stolen).toMatchObject({ status: 403, body: { error: 'ticket_invalid' } });
      // Claiming the victim's kid with the thief's key fails on the signature.
      const forged = await send('POST', '/v1/enroll', await proofFor(thief.signer, victim.identity_id, 'POST', '/v1/enroll', body), body);
      expect(forged).toMatchObject({ status: 401, body: { error: 'proof_bad_signature' } });
      // The victim's ticket is still good for the victim.
      const victimSigner = await env.keyStores.signer(victim.key_uri);
      const own = await send('POST', '/v1/enroll', await proofFor(victimSigner, victim.identity_id, 'POST', '/v1/enroll', body), body);
      expect(own.status).toBe(200);
    });

    it('refuses a ticket TTL above the cap', async () => {
      const provisioned = await env.provision(`ttl-${dialect}@acme.local`);
      await expect(
        env.admin.request('POST', `/v1/admin/identities/${encodeURIComponent(provisioned.address)}/tickets`, { ttl_seconds: 25 * 3600 }),
      ).rejects.toMatchObject({ code: 'invalid_request', status: 400 });
    });
  });

  describe('proofs', () => {
    let agent: Awaited<ReturnType<typeof enrolledAgent>>;
    beforeAll(async () => {
      agent = await enrolledAgent();
    });

    const expectRejected = async (reply: Promise<Reply>, code: string, status = 401) => {
      const { status: got, body, wwwAuthenticate } = await reply;
      expect({ status: got, error: body.error }).toEqual({ status, error: code });
      expect(body.message).toBeTruthy();
      if (status === 401) expect(wwwAuthenticate).toBe(`Proof error="${code}"`);
    };

    it('accepts a good proof', async () => {
      const reply = await send('GET', '/v1/whoami', await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami'));
      expect(reply).toMatchObject({ status: 200, body: { address: agent.address } });
    });

    it('rejects a missing or malformed proof', async () => {
      await expectRejected(send('GET', '/v1/whoami', undefined), 'proof_missing');
      await expectRejected(send('GET', '/v1/whoami', 'not-a-jws'), 'proof_malformed');
      const noTyp = await signCompactJws(agent.signer, { alg: 'EdDSA', kid: agent.identity_id }, { iss: agent.identity_id });
      await expectRejected(send('GET', '/v1/whoami', noTyp), 'proof_malformed');
      const wrongTyp = await signCompactJws(agent.signer, { alg: 'EdDSA', typ: 'JWT', kid: agent.identity_id }, { iss: agent.identity_id });
      await expectRejected(send('GET', '/v1/whoami', wrongTyp), 'proof_malformed');
      expect(PROOF_TYPE).not.toBe('JWT');
    });

    it('rejects a replayed proof', async () => {
      const proof = await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami');
      expect((await send('GET', '/v1/whoami', proof)).status).toBe(200);
      await expectRejected(send('GET', '/v1/whoami', proof), 'proof_replayed');
    });

    it('rejects a tampered signature and a tampered payload', async () => {
      const proof = await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami');
      const [header, payload, signature] = proof.split('.') as [string, string, string];
      const flipped = base64url.decode(signature);
      flipped[5]! ^= 0x01;
      await expectRejected(send('GET', '/v1/whoami', `${header}.${payload}.${base64url.encode(flipped)}`), 'proof_bad_signature');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
      const altered = base64url.encode(JSON.stringify({ ...claims, jti: 'other-jti' }));
      await expectRejected(send('GET', '/v1/whoami', `${header}.${altered}.${signature}`), 'proof_bad_signature');
    });

    it('rejects a proof signed by a foreign key', async () => {
      const stranger = await env.keyStore.createSigningKey({ label: `stranger-${dialect}-${Date.now()}` });
      await expectRejected(send('GET', '/v1/whoami', await proofFor(stranger, agent.identity_id, 'GET', '/v1/whoami')), 'proof_bad_signature');
      await expectRejected(send('GET', '/v1/whoami', await proofFor(stranger, 'unknown-kid', 'GET', '/v1/whoami')), 'proof_unknown_key');
    });

    it('rejects a stale or future iat, and accepts one at the edge of the allowed skew', async () => {
      // The broker's clock stands still, so the second cannot tick between signing and checking.
      env.clock.freeze();
      try {
        const now = Math.floor(env.clock.now() / 1000);
        const withIat = async (iat: number) => send('GET', '/v1/whoami', await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami', '', { iat }));
        await expectRejected(withIat(now - PROOF_MAX_SKEW_SECONDS - 1), 'proof_stale');
        await expectRejected(withIat(now + PROOF_MAX_SKEW_SECONDS + 1), 'proof_stale');
        expect((await withIat(now - PROOF_MAX_SKEW_SECONDS)).status).toBe(200);
        expect((await withIat(now + PROOF_MAX_SKEW_SECONDS)).status).toBe(200);
      } finally {
        env.clock.release();
      }
    });

    it('rejects a wrong audience, method, URL or body', async () => {
      await expectRejected(send('GET', '/v1/whoami', await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami', '', { aud: 'https://other-broker' })), 'proof_wrong_audience');
      await expectRejected(send('GET', '/v1/whoami', await proofFor(agent.signer, agent.identity_id, 'POST', '/v1/whoami')), 'proof_wrong_method');
      await expectRejected(send('GET', '/v1/whoami', await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami?x=1')), 'proof_wrong_url');
      await expectRejected(
        send('GET', '/v1/whoami', await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami', '', { url: 'http://evil.example/v1/whoami' })),
        'proof_wrong_url',
      );
      const signedBody = JSON.stringify({ ticket: 'tkt_aaaaaaaaaaaaaaaa' });
      const sentBody = JSON.stringify({ ticket: 'tkt_bbbbbbbbbbbbbbbb' });
      await expectRejected(send('POST', '/v1/enroll', await proofFor(agent.signer, agent.identity_id, 'POST', '/v1/enroll', signedBody), sentBody), 'proof_wrong_body');
    });

    it('keeps agents out of admin routes', async () => {
      await expectRejected(send('GET', '/v1/admin/identities', await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/admin/identities')), 'forbidden', 403);
      expect(await deniedReasons(agent.identity_id, 'request.forbidden')).toEqual(['forbidden']);
    });

    it('audits every rejection with its reason: one event each once the signature is good, counted in the summary before', async () => {
      const reasons = await deniedReasons(agent.identity_id);
      for (const code of ['proof_replayed', 'proof_stale', 'proof_wrong_audience', 'proof_wrong_method', 'proof_wrong_url', 'proof_wrong_body']) {
        expect(reasons).toContain(code);
      }
      expect(reasons).not.toContain('proof_bad_signature');
      // Two tampered proofs, a foreign key and the forged enrollment above, all from this address.
      const { counts } = await rejectionsSince(env, 0);
      expect(counts.find((entry) => entry.source === '127.0.0.1' && entry.reason === 'proof_bad_signature')?.count).toBeGreaterThanOrEqual(3);
    });

    it('refuses to revoke the last active admin', async () => {
      await expect(env.admin.request('POST', `/v1/admin/identities/${encodeURIComponent('admin@tessera.local')}/revoke`, { reason: 'oops' })).rejects.toMatchObject({
        code: 'conflict',
        status: 409,
      });
      const admin = await env.admin.request<{ status: string }>('GET', '/v1/whoami');
      expect(admin.status).toBe('active');
    });

    it('answers bad input with a documented error and changes nothing', async () => {
      const { identities: before } = await env.admin.request<{ identities: unknown[] }>('GET', '/v1/admin/identities');
      await expect(env.admin.request('POST', '/v1/admin/identities', { address: 'not an address', public_key: 'x', key_uri: 'pkcs11:x' })).rejects.toMatchObject({
        code: 'invalid_request',
        status: 400,
      });
      await expect(
        // A key the broker would take (the base point: canonical, large order), at a taken address.
        env.admin.request('POST', '/v1/admin/identities', { address: agent.address, public_key: base64url.encode(Buffer.from('58'.padEnd(64, '6'), 'hex')), key_uri: 'pkcs11:token=t;object=o' }),
      ).rejects.toMatchObject({ code: 'conflict', status: 409 });
      const { identities: after } = await env.admin.request<{ identities: unknown[] }>('GET', '/v1/admin/identities');
      expect(after).toHaveLength(before.length);
    });
  });
});
