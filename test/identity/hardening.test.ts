import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createProof, PROOF_SCHEME } from '../../src/identity/proof.js';
import type { Signer } from '../../src/keys/key-store.js';
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
  readonly iat?: number;
}

/** Issue 9 (security hardening), the proof and identity holes: one SQLite broker, requests by inject(). */
describe('proof and identity hardening', () => {
  let env: TestBroker;
  let seq = 0;
  beforeAll(async () => {
    env = await startTestBroker();
  });
  afterAll(() => env?.close());
  afterEach(() => env.clock.release());

  const nowSeconds = () => Math.floor(env.clock.now() / 1000);

  /** A proof for `payload` (the exact body bytes), fresh by the broker's clock unless `iat` is given. */
  const proofFor = (caller: Caller, method: string, path: string, payload = '', iat = nowSeconds()) =>
    createProof(caller.signer, caller.identityId, env.url, { method, url: env.url + path, body: payload }, iat);

  async function send(caller: Caller, method: string, path: string, options: SendOptions = {}) {
    const payload = options.body === undefined ? '' : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    const headers: Record<string, string> = { authorization: `${PROOF_SCHEME} ${options.proof ?? (await proofFor(caller, method, path, payload, options.iat))}` };
    if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const response = await env.broker.app.inject({ method: method as 'GET', url: path, headers, ...(options.body !== undefined && { payload }) });
    return { status: response.statusCode, body: response.json<Record<string, unknown>>() };
  }

  async function enrolled(role: 'agent' | 'admin' | 'reviewer' = 'agent', attributes: Record<string, string> = {}): Promise<Caller> {
    const address = `${role}-${++seq}@acme.local`;
    const provisioned = await env.provision(address, attributes);
    const caller = { identityId: provisioned.identity_id, address, signer: await env.keyStores.signer(provisioned.key_uri) };
    expect(await send(caller, 'POST', '/v1/enroll', { body: { ticket: provisioned.ticket } })).toMatchObject({ status: 200 });
    return caller;
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
  });
});
