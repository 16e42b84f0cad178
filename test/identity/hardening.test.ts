import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { provisionAgent, type ProvisionRole } from '../../provisioner/provision.js';
import { BROKER_CLOCK_MARGIN_MS, bodyHash, createProof, PROOF_SCHEME, PROOF_TYPE, proofAcceptedUntil } from '../../src/identity/proof.js';
import type { Signer } from '../../src/keys/key-store.js';
import { openStore } from '../../src/store/database.js';
import { NON_CANONICAL_LARGE_ORDER, SMALL_ORDER_CANONICAL, SMALL_ORDER_NON_CANONICAL } from '../support/ed25519-small-order.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

interface Caller {
  readonly identityId: string;
  readonly address: string;
  readonly signer: Signer;
}

interface SendOptions {
  /** sent as is; otherwise JSON-encoded (when not undefined) */
  readonly body?: unknown;
  readonly contentType?: string;
  /** a proof to send instead of a fresh one */
  readonly proof?: string;
}

/** Issue 9 (security hardening), the proof and identity holes: one SQLite broker, requests by inject(). */
describe('proof and identity hardening', () => {
  const BACKEND = 'items-api';
  let env: TestBroker;
  /** the admin identity `tessera init` created */
  let admin: Caller;
  let seq = 0;
  beforeAll(async () => {
    env = await startTestBroker();
    admin = { identityId: env.admin.identityId, address: 'admin@tessera.local', signer: await env.keyStores.signer(env.config.adminKeyUri!) };
    // A proxied backend: leasing mints nothing upstream, so none needs to run.
    await env.admin.request('POST', '/v1/admin/backends', {
      name: BACKEND,
      type: 'http',
      upstream_url: 'http://127.0.0.1:9',
      secret: 'upstream-secret',
      scopes: { reader: [{ methods: ['GET'], path_prefix: '/v1/items' }] },
    });
    for (const subject of ['attr:team=payments', admin.address]) {
      await env.admin.request('POST', '/v1/admin/grants', { subject, backend: BACKEND, role: 'reader', max_ttl_seconds: 600 });
    }
  });
  afterAll(() => env?.close());
  afterEach(() => env.clock.release());

  const nowSeconds = () => Math.floor(env.clock.now() / 1000);

  /** A proof for `payload` (the exact body bytes), fresh by the broker's clock unless `iat` is given. */
  const proofFor = (caller: Caller, method: string, path: string, payload = '', iat = nowSeconds()) =>
    createProof(caller.signer, caller.identityId, env.url, { method, url: env.url + path, body: payload }, iat);

  async function send(caller: Caller, method: string, path: string, options: SendOptions = {}) {
    const payload = options.body === undefined ? '' : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    const headers: Record<string, string> = { authorization: `${PROOF_SCHEME} ${options.proof ?? (await proofFor(caller, method, path, payload))}` };
    if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const response = await env.broker.app.inject({ method: method as 'GET', url: path, headers, ...(options.body !== undefined && { payload }) });
    return { status: response.statusCode, body: response.json<Record<string, unknown>>() };
  }

  async function enrolled(role: ProvisionRole = 'agent', attributes: Record<string, string> = {}): Promise<Caller> {
    const address = `${role}-${++seq}@acme.local`;
    const provisioned = await provisionAgent(env.admin, env.keyStore, { address, attributes, role });
    const caller = { identityId: provisioned.identity_id, address, signer: await env.keyStores.signer(provisioned.key_uri) };
    expect(await send(caller, 'POST', '/v1/enroll', { body: { ticket: provisioned.ticket } })).toMatchObject({ status: 200 });
    return caller;
  }

  /** The reasons of the `action` events about `identityId`, oldest first. */
  async function auditReasons(identityId: string, action: string): Promise<(string | null)[]> {
    const events = (await send(admin, 'GET', `/v1/admin/audit?action=${action}&limit=1000`)).body.events as { identity_id: string | null; reason: string | null }[];
    return events.filter((event) => event.identity_id === identityId).map((event) => event.reason);
  }

  describe('replay cache', () => {
    it('remembers a jti for as long as its proof can be accepted, whatever the prune schedule', async () => {
      const agent = await enrolled();
      // First use half a second into a second, with a proof dated 60 s ahead (the most the skew allows).
      const second = Math.floor(Date.now() / 1000);
      env.clock.pin(second * 1000 + 500);
      const iat = second + 60;
      const proof = await proofFor(agent, 'GET', '/v1/whoami', '', iat);
      expect(await send(agent, 'GET', '/v1/whoami', { proof })).toMatchObject({ status: 200 });

      // The last instant the proof passes the iat window (floor(now / 1000) = iat + 60).
      env.clock.advance((iat + 61) * 1000 - 1 - env.clock.now());
      await env.broker.authenticator.pruneReplayCache();
      expect(await send(agent, 'GET', '/v1/whoami', { proof })).toMatchObject({ status: 401, body: { error: 'proof_replayed' } });
      env.clock.advance(1);
      await env.broker.authenticator.pruneReplayCache();
      expect(await send(agent, 'GET', '/v1/whoami', { proof })).toMatchObject({ status: 401, body: { error: 'proof_stale' } });
    });

    it('lets one of several concurrent uses of a proof through (its jtis are committed together)', async () => {
      const agent = await enrolled();
      const proof = await proofFor(agent, 'GET', '/v1/whoami', '');
      const other = await proofFor(agent, 'GET', '/v1/whoami', '');
      const results = await Promise.all([proof, proof, other, proof].map((sent) => send(agent, 'GET', '/v1/whoami', { proof: sent })));
      expect(results.map((result) => result.status).sort()).toEqual([200, 200, 401, 401]);
      expect(results[2]).toMatchObject({ status: 200 });
      expect(results.filter((result) => result.status === 401).map((result) => result.body.error)).toEqual(['proof_replayed', 'proof_replayed']);
    });
  });

  describe('only agents lease', () => {
    it('refuses an admin or a reviewer a lease whatever the grants, and audits it', async () => {
      const agent = await enrolled('agent', { team: 'payments' });
      const reviewer = await enrolled('reviewer', { team: 'payments' });
      expect(await send(agent, 'POST', '/v1/leases', { body: { backend: BACKEND, role: 'reader' } })).toMatchObject({ status: 201 });
      for (const caller of [reviewer, admin]) {
        expect(await send(caller, 'POST', '/v1/leases', { body: { backend: BACKEND, role: 'reader' } })).toMatchObject({
          status: 403,
          body: { error: 'role_cannot_lease' },
        });
        expect(await auditReasons(caller.identityId, 'lease.denied')).toEqual(['role_cannot_lease']);
      }
    });

    it('refuses to renew a lease its non-agent owner already holds', async () => {
      const holder = await enrolled('agent', { team: 'payments' });
      const leased = await send(holder, 'POST', '/v1/leases', { body: { backend: BACKEND, role: 'reader' } });
      expect(leased).toMatchObject({ status: 201 });
      // As if issued before roles were checked at issue: the owner is a reviewer now.
      const store = await openStore(env.config.databaseUrl, { create: false });
      try {
        await store.db.updateTable('identities').set({ role: 'reviewer' }).where('id', '=', holder.identityId).execute();
      } finally {
        await store.close();
      }
      expect(await send(holder, 'POST', `/v1/leases/${leased.body.lease_id as string}/renew`, { body: {} })).toMatchObject({
        status: 403,
        body: { error: 'role_cannot_lease' },
      });
      expect(await auditReasons(holder.identityId, 'lease.denied')).toEqual(['role_cannot_lease']);
    });
  });

  describe('proof parser', () => {
    let agent: Caller;
    beforeAll(async () => {
      agent = await enrolled('agent', { team: 'payments' });
    });

    const segment = (json: string) => Buffer.from(json).toString('base64url');
    const headerJson = (caller: Caller) => JSON.stringify({ alg: 'EdDSA', typ: PROOF_TYPE, kid: caller.identityId });
    const payloadJson = (caller: Caller, method: string, path: string, body = '') =>
      JSON.stringify({ iss: caller.identityId, aud: env.url, iat: nowSeconds(), jti: randomUUID(), htm: method, htu: env.url + path, bh: bodyHash(body) });

    /** Signs the two segments exactly as given: the signature is good whatever they hold. */
    async function rawProof(caller: Caller, header: string, payload: string): Promise<string> {
      const signature = await caller.signer.sign(new TextEncoder().encode(`${header}.${payload}`));
      return `${header}.${payload}.${Buffer.from(signature).toString('base64url')}`;
    }

    /** The same bytes spelled differently: the unused low bits of the last character set. */
    function withPaddingBits(encoded: string): string {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      expect(encoded.length % 4).not.toBe(0);
      const spelled = encoded.slice(0, -1) + alphabet[alphabet.indexOf(encoded.at(-1)!) ^ 1];
      expect(Buffer.from(spelled, 'base64url')).toEqual(Buffer.from(encoded, 'base64url'));
      return spelled;
    }

    /** JSON text padded with trailing spaces until its base64url spelling has unused bits. */
    const withUnusedBits = (json: string) => (segment(json).length % 4 === 0 ? `${json} ` : json);

    const whoami = async (proof: string) => send(agent, 'GET', '/v1/whoami', { proof });
    const malformed = { status: 401, body: { error: 'proof_malformed' } };

    it('accepts a hand-signed proof of the expected shape', async () => {
      expect(await whoami(await rawProof(agent, segment(headerJson(agent)), segment(payloadJson(agent, 'GET', '/v1/whoami'))))).toMatchObject({ status: 200 });
    });

    it('refuses header members other than exactly alg, typ and kid', async () => {
      const payload = () => segment(payloadJson(agent, 'GET', '/v1/whoami'));
      for (const extra of [{ jwk: { kty: 'OKP' } }, { b64: false }, { cty: 'JWT' }, { crit: ['exp'] }]) {
        const header = segment(JSON.stringify({ ...JSON.parse(headerJson(agent)), ...extra }));
        expect(await whoami(await rawProof(agent, header, payload())), JSON.stringify(extra)).toMatchObject(malformed);
      }
      const noKid = segment(JSON.stringify({ alg: 'EdDSA', typ: PROOF_TYPE }));
      expect(await whoami(await rawProof(agent, noKid, payload()))).toMatchObject({ status: 401 });
    });

    it('refuses a member named twice in the header or the payload, in any spelling', async () => {
      const header = headerJson(agent);
      const payload = () => payloadJson(agent, 'GET', '/v1/whoami');
      const duplicated = [
        [`${header.slice(0, -1)},"kid":"${agent.identityId}"}`, payload()],
        [`${header.slice(0, -1)},"k\\u0069d":"${agent.identityId}"}`, payload()],
        [header, `${payload().slice(0, -1)},"jti":"${randomUUID()}"}`],
        [header, `${payload().slice(0, -1)},"\\u006a\\u0074\\u0069":"${randomUUID()}"}`],
        [header, `${payload().slice(0, -1)},"x":{"a":1,"\\u0061":2}}`],
      ];
      for (const [headerText, payloadText] of duplicated) {
        expect(await whoami(await rawProof(agent, segment(headerText!), segment(payloadText!))), `${headerText} ${payloadText}`).toMatchObject(malformed);
      }
    });

    it('refuses non-canonical base64url in the signature, the header or the payload', async () => {
      const [header, payload, signature] = (await rawProof(agent, segment(headerJson(agent)), segment(payloadJson(agent, 'GET', '/v1/whoami')))).split('.') as [string, string, string];
      expect(signature).toHaveLength(86);
      expect(await whoami(`${header}.${payload}.${withPaddingBits(signature)}`)).toMatchObject(malformed);
      const spelledHeader = withPaddingBits(segment(withUnusedBits(headerJson(agent))));
      expect(await whoami(await rawProof(agent, spelledHeader, segment(payloadJson(agent, 'GET', '/v1/whoami'))))).toMatchObject(malformed);
      const spelledPayload = withPaddingBits(segment(withUnusedBits(payloadJson(agent, 'GET', '/v1/whoami'))));
      expect(await whoami(await rawProof(agent, segment(headerJson(agent)), spelledPayload))).toMatchObject(malformed);
      // The canonical spelling of the same signature still works.
      expect(await whoami(`${header}.${payload}.${signature}`)).toMatchObject({ status: 200 });
    });

    it('lets no body past that bh does not cover, whatever its Content-Type or method', async () => {
      const leased = await send(agent, 'POST', '/v1/leases', { body: { backend: BACKEND, role: 'reader' } });
      expect(leased).toMatchObject({ status: 201 });
      const path = `/v1/leases/${leased.body.lease_id as string}`;
      // Signed as if bodiless, sent with a body fastify would parse as text.
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
        const reply = await send(agent, 'DELETE', path, { body: 'state=revoked', contentType, proof: await proofFor(agent, 'DELETE', path) });
        expect(reply, contentType).toMatchObject({ status: 400, body: { error: 'invalid_request', message: 'Request bodies must be application/json.' } });
      }
      const getWithBody = await send(agent, 'GET', path, { body: { sneaked: true }, proof: await proofFor(agent, 'GET', path) });
      expect(getWithBody).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(await send(agent, 'GET', path)).toMatchObject({ status: 200, body: { state: 'active' } });
      // JSON bodies stay covered byte for byte.
      const signed = await proofFor(agent, 'POST', `${path}/renew`, '{}');
      expect(await send(agent, 'POST', `${path}/renew`, { body: '{ }', proof: signed })).toMatchObject({ status: 401, body: { error: 'proof_wrong_body' } });
    });
  });

  describe('identity registration', () => {
    it('refuses small-order and non-canonical public keys and stores nothing', async () => {
      const registered = async () => (await send(admin, 'GET', '/v1/admin/audit?action=identity.registered&limit=1000')).body.events as unknown[];
      const before = (await registered()).length;
      for (const [index, pk] of [...SMALL_ORDER_CANONICAL, ...SMALL_ORDER_NON_CANONICAL, NON_CANONICAL_LARGE_ORDER].entries()) {
        const address = `weak-key-${index}@acme.local`;
        const body = { address, public_key: Buffer.from(pk, 'hex').toString('base64url'), key_uri: 'pkcs11:token=t;object=o' };
        expect(await send(admin, 'POST', '/v1/admin/identities', { body }), pk).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
        expect(await send(admin, 'GET', `/v1/admin/identities/${address}`), pk).toMatchObject({ status: 404 });
      }
      expect(await registered()).toHaveLength(before);
    });
  });

  describe('stored proofs in the review API and page', () => {
    interface ReviewedEvent {
      seq: number;
      proof: string | null;
      proof_withheld_until: string | null;
    }

    it('withholds a stored proof while it could still be accepted', async () => {
      const agent = await enrolled('agent', { team: 'payments' });
      const reviewer = await enrolled('reviewer');
      env.clock.pin(Date.now());
      const body = JSON.stringify({ backend: BACKEND, role: 'reader' });
      const proof = await proofFor(agent, 'POST', '/v1/leases', body);
      expect(await send(agent, 'POST', '/v1/leases', { body, proof })).toMatchObject({ status: 201 });
      const showableAt = proofAcceptedUntil(nowSeconds()) + BROKER_CLOCK_MARGIN_MS;

      const granted = async () => {
        const { body: audit } = await send(reviewer, 'GET', `/v1/review/audit?action=lease.granted&actor=${agent.identityId}`);
        const { body: timeline } = await send(reviewer, 'GET', `/v1/review/identities/${agent.address}/timeline`);
        const fromTimeline = (timeline.events as (ReviewedEvent & { action: string })[]).filter((event) => event.action === 'lease.granted');
        expect(fromTimeline).toEqual(audit.events);
        return audit.events as ReviewedEvent[];
      };
      // The review page, through a session opened with the reviewer's proof.
      const page = async () => {
        const { body: created } = await send(reviewer, 'POST', '/v1/review/sessions', { body: {} });
        const login = await env.broker.app.inject({ method: 'GET', url: new URL(created.login_url as string).pathname + new URL(created.login_url as string).search });
        const cookie = String(login.headers['set-cookie']).split(';')[0]!;
        return (await env.broker.app.inject({ method: 'GET', url: `/ui/audit?action=lease.granted&actor=${agent.identityId}`, headers: { cookie } })).body;
      };

      const withheld = { proof: null, proof_withheld_until: new Date(showableAt).toISOString() };
      expect(await granted()).toEqual([expect.objectContaining(withheld)]);
      expect(await page()).toContain('signed, withheld until');
      env.clock.advance(showableAt - 1 - env.clock.now());
      expect(await granted()).toEqual([expect.objectContaining(withheld)]);
      env.clock.advance(1);
      expect(await granted()).toEqual([expect.objectContaining({ proof, proof_withheld_until: null })]);
      const shown = await page();
      expect(shown).toContain('>signed</span>');
      expect(shown).not.toContain('withheld');
    });
  });
});
