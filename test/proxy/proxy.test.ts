import OpenAI from 'openai';
import Stripe from 'stripe';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sha256Base64url } from '../../src/crypto/encoding.js';
import { openStore } from '../../src/store/database.js';
import type { TestBroker } from '../support/broker.js';
import { type FakeOpenAI, type FakeUpstream, sendJson, STREAM_CHUNKS, STREAM_GAP_MS, startFakeUpstream } from '../support/fake-upstream.js';
import { enrolledAgent, type TestAgent } from '../support/lease-env.js';
import { rejectionsSince } from '../support/rejections.js';
import { type ApiCredential, auditEvents, OPENAI_SECRET, openaiFor, STRIPE_SECRET, type StripeOpenAIEnv, startStripeOpenAIEnv, stripeFor } from './support.js';

const HTTP_SECRET = 'real-http-secret-0123456789';

describe('credential proxy: official Stripe and OpenAI clients against fake upstreams', () => {
  let proxy: StripeOpenAIEnv;
  let env: TestBroker;
  let admin: TestAgent;
  let agent: TestAgent;
  let stripeUpstream: FakeUpstream;
  let openaiUpstream: FakeOpenAI;
  let httpUpstream: FakeUpstream;

  beforeAll(async () => {
    httpUpstream = await startFakeUpstream((request, response) =>
      request.headers['x-api-key'] === HTTP_SECRET ? sendJson(response, 200, { path: request.path }) : sendJson(response, 401, { error: 'bad key' }),
    );
    proxy = await startStripeOpenAIEnv();
    ({ env, admin, stripeUpstream, openaiUpstream } = proxy);
    await admin.expect(201, 'POST', '/v1/admin/backends', {
      name: 'items',
      type: 'http',
      upstream_url: `${httpUpstream.url}/base`,
      secret: HTTP_SECRET,
      auth_header: 'x-api-key',
      auth_scheme: '',
      scopes: { reader: [{ methods: ['GET'], path_prefix: '/api/items' }] },
    });
    const grant = (backend: string, role: string, constraints?: Record<string, string>) =>
      admin.expect(201, 'POST', '/v1/admin/grants', { subject: 'attr:team=payments', backend, role, max_ttl_seconds: 600, ...(constraints && { constraints }) });
    agent = await enrolledAgent(env, 'refund-bot@acme.local', { team: 'payments' });
    await grant('stripe', 'refunds:write', { max_amount: '5000' });
    await grant('openai', 'chat', { models: 'gpt-4o-mini, gpt-4.1-nano' });
    await grant('items', 'reader');
  });
  afterAll(async () => {
    await proxy?.close();
    await httpUpstream?.close();
  });

  const lease = async (backend: string, role: string, who = agent) => (await who.lease(backend, role)) as unknown as { lease_id: string; credential: ApiCredential };
  const audit = (action: string) => auditEvents(admin, action);

  it('validates scopes and constraints when granting', async () => {
    const refused = (body: Record<string, unknown>) =>
      admin.send('POST', '/v1/admin/grants', { subject: agent.address, max_ttl_seconds: 60, ...body }).then((reply) => [reply.status, (reply.body as { error: string }).error]);
    expect(await refused({ backend: 'stripe', role: 'refunds:write', constraints: { max_amount: 'lots' } })).toEqual([400, 'invalid_request']);
    expect(await refused({ backend: 'stripe', role: 'refunds:write', constraints: { models: 'gpt-4o' } })).toEqual([400, 'invalid_request']);
    expect(await refused({ backend: 'stripe', role: 'charges:write' })).toEqual([400, 'invalid_request']);
    expect(await refused({ backend: 'items', role: 'reader', constraints: { max_amount: '1' } })).toEqual([400, 'invalid_request']);
  });

  it('Stripe: allowed calls reach the upstream with the real secret; the agent never sees it', async () => {
    const { credential } = await lease('stripe', 'refunds:write');
    expect(credential.api_key).toMatch(/^tsk_/);
    expect(JSON.stringify(credential)).not.toContain(STRIPE_SECRET);
    const stripe = stripeFor(credential);

    const refund = await stripe.refunds.create({ charge: 'ch_1', amount: 5000 });
    expect(refund).toMatchObject({ object: 'refund', amount: 5000, charge: 'ch_1' });
    expect(await stripe.charges.retrieve('ch_1')).toMatchObject({ id: 'ch_1', object: 'charge' });
    const forwarded = stripeUpstream.seen.filter((request) => request.path.startsWith('/v1/refunds') || request.path.startsWith('/v1/charges'));
    expect(forwarded.map((request) => request.authorization)).toEqual([`Bearer ${STRIPE_SECRET}`, `Bearer ${STRIPE_SECRET}`]);
  });

  it('Stripe: out-of-scope paths and over-limit refunds are refused before the upstream sees them', async () => {
    const stripe = stripeFor((await lease('stripe', 'refunds:write')).credential);
    const before = stripeUpstream.seen.length;

    const overLimit = await stripe.refunds.create({ charge: 'ch_1', amount: 5001 }).catch((error: unknown) => error);
    expect(overLimit).toBeInstanceOf(Stripe.errors.StripePermissionError);
    expect(overLimit).toMatchObject({ statusCode: 403, code: 'constraint_violation', message: expect.stringMatching(/^Tessera: refund amount 5001 exceeds max_amount 5000/) });
    const fullRefund = await stripe.refunds.create({ charge: 'ch_1' }).catch((error: unknown) => error);
    expect(fullRefund).toMatchObject({ statusCode: 403, code: 'constraint_violation' });
    const outOfScope = await stripe.customers.list().catch((error: unknown) => error);
    expect(outOfScope).toBeInstanceOf(Stripe.errors.StripePermissionError);
    expect(outOfScope).toMatchObject({ code: 'scope_violation', message: expect.stringContaining('Tessera: GET /v1/customers is outside') });
    expect(stripeUpstream.seen.length).toBe(before);
  });

  it('OpenAI: allowed models pass, other models and endpoints are refused upstream-style', async () => {
    const { credential } = await lease('openai', 'chat');
    const openai = openaiFor(credential);
    const completion = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(completion.choices[0]?.message.content).toBe('Hello world');
    expect(openaiUpstream.seen.at(-1)?.authorization).toBe(`Bearer ${OPENAI_SECRET}`);

    const before = openaiUpstream.seen.length;
    const wrongModel = await openai.chat.completions.create({ model: 'gpt-4.1', messages: [{ role: 'user', content: 'hi' }] }).catch((error: unknown) => error);
    expect(wrongModel).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(wrongModel).toMatchObject({ status: 403, code: 'constraint_violation', message: expect.stringContaining('Tessera: model "gpt-4.1" is not allowed') });
    const embeddings = await openai.embeddings.create({ model: 'gpt-4o-mini', input: 'x' }).catch((error: unknown) => error);
    expect(embeddings).toMatchObject({ status: 403, code: 'scope_violation' });
    expect(openaiUpstream.seen.length).toBe(before);
  });

  it('OpenAI: a streamed chat completion arrives chunk by chunk', async () => {
    const openai = openaiFor((await lease('openai', 'chat')).credential);
    // The upstream sends its next chunk only once the agent has the previous one (or after 5 s, so
    // that a proxy that buffers fails the assertion below instead of hanging the test).
    let release = () => undefined as void;
    openaiUpstream.pace(
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
          setTimeout(resolve, 5_000).unref();
        }),
    );
    try {
      const first = openaiUpstream.chunksSent();
      const stream = await openai.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], stream: true });
      const sentAtArrival: number[] = [];
      let text = '';
      for await (const chunk of stream) {
        sentAtArrival.push(openaiUpstream.chunksSent() - first);
        text += chunk.choices[0]?.delta.content ?? '';
        release();
      }
      expect(text).toBe(STREAM_CHUNKS.join(''));
      // Streamed: each chunk reached the agent before the upstream sent the next. Buffered, all
      // would arrive once the upstream had sent everything.
      expect(sentAtArrival).toEqual(STREAM_CHUNKS.map((_, index) => index + 1));
    } finally {
      openaiUpstream.pace(undefined);
    }
  });

  it('OpenAI: an agent abandoning a stream cancels it upstream', async () => {
    const openai = openaiFor((await lease('openai', 'chat')).credential);
    const before = openaiUpstream.abandonedStreams();
    const stream = await openai.chat.completions.create({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }], stream: true });
    for await (const _chunk of stream) break; // leaving the loop aborts the agent's request
    await vi.waitFor(() => expect(openaiUpstream.abandonedStreams()).toBe(before + 1), { timeout: 10_000 }); // a poll for an event, not a timing check
  });

  it('generic http: method and path-prefix rules, the secret in the configured header, canonical paths only', async () => {
    const { credential } = await lease('items', 'reader');
    const client = new Client(credential.base_url);
    const call = async (method: string, path: string) => {
      const reply = await client.request({ method: method as 'GET', path, headers: { authorization: `Bearer ${credential.api_key}` } });
      return { status: reply.statusCode, body: (await reply.body.json()) as Record<string, unknown> };
    };
    try {
      expect(await call('GET', '/api/items/7?full=1')).toEqual({ status: 200, body: { path: '/base/api/items/7?full=1' } });
      expect(httpUpstream.seen.at(-1)?.headers).toMatchObject({ 'x-api-key': HTTP_SECRET });
      expect(httpUpstream.seen.at(-1)?.headers.authorization).toBeUndefined();
      const before = httpUpstream.seen.length;
      expect(await call('POST', '/api/items')).toMatchObject({ status: 403, body: { error: 'scope_violation' } });
      expect(await call('GET', '/api/itemsx')).toMatchObject({ status: 403, body: { error: 'scope_violation' } });
      expect(await call('GET', '/api/items/../admin')).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(await call('GET', '/api/items/%2e%2e/admin')).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
      expect(httpUpstream.seen.length).toBe(before);
    } finally {
      await client.close();
    }
  });

  it('unknown and missing tokens are refused; the audit names an unknown token by its SHA-256 only', async () => {
    const token = 'tsk_not-a-lease';
    const bogus = openaiFor({ base_url: `http://${env.config.proxyListen}`, api_key: token });
    expect(await bogus.models.list().catch((error: unknown) => error)).toMatchObject({ status: 401, code: 'lease_token_invalid' });
    const client = new Client(`http://${env.config.proxyListen}`);
    try {
      const reply = await client.request({ method: 'GET', path: '/v1/no-token' });
      expect(reply.statusCode).toBe(401);
      await reply.body.dump();
    } finally {
      await client.close();
    }

    // No lease named: counted in the window's summary, not one event each.
    expect((await audit('proxy.refused')).filter((event) => event.reason === 'lease_token_invalid')).toEqual([]);
    const { counts } = await rejectionsSince(env, 0);
    // Both calls in one entry; its sample is the first of them.
    expect(counts.filter((entry) => entry.action === 'proxy.refused' && entry.reason === 'lease_token_invalid')).toEqual([
      { source: '127.0.0.1', action: 'proxy.refused', reason: 'lease_token_invalid', count: 2, sample: { method: 'GET', path: '/v1/models', token_sha256: sha256Base64url(token) } },
    ]);
    const summaries = await audit('request.rejected.summary');
    expect(JSON.stringify(summaries)).not.toContain(token);
  });

  it('revoking a lease bites on the next request, on the same keep-alive connection', async () => {
    const { lease_id, credential } = await lease('stripe', 'refunds:write');
    const client = new Client(credential.base_url, { pipelining: 1 });
    let connections = 0;
    client.on('connect', () => (connections += 1));
    const charge = async () => {
      const reply = await client.request({ method: 'GET', path: '/v1/charges/ch_9', headers: { authorization: `Bearer ${credential.api_key}` } });
      return { status: reply.statusCode, body: (await reply.body.json()) as { error?: { code: string; message: string } } };
    };
    try {
      expect((await charge()).status).toBe(200);
      await agent.expect(200, 'DELETE', `/v1/leases/${lease_id}`);
      const refused = await charge();
      expect(refused).toMatchObject({ status: 401, body: { error: { code: 'lease_token_inactive', message: expect.stringMatching(/^Tessera: Lease .* is revoked/) } } });
      expect(connections).toBe(1);
      // The refusal names the token by the hash the lease stores, so it ties to the lease either way.
      expect((await audit('proxy.refused')).find((event) => event.details.lease_id === lease_id)?.details).toMatchObject({ token_sha256: sha256Base64url(credential.api_key) });
    } finally {
      await client.close();
    }

    // The official client too: its keep-alive agent holds a connection across the revocation.
    const second = await lease('stripe', 'refunds:write');
    const stripe = stripeFor(second.credential);
    await stripe.charges.retrieve('ch_2');
    await agent.expect(200, 'DELETE', `/v1/leases/${second.lease_id}`);
    expect(await stripe.charges.retrieve('ch_2').catch((error: unknown) => error)).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
  });

  it('revoking the identity bites on the next request', async () => {
    const doomed = await enrolledAgent(env, 'doomed-bot@acme.local', { team: 'payments' });
    const openai = openaiFor((await lease('openai', 'chat', doomed)).credential);
    await openai.models.list();
    await admin.expect(200, 'POST', `/v1/admin/identities/${encodeURIComponent(doomed.address)}/revoke`, { reason: 'compromised' });
    const refused = await openai.models.list().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.APIError);
    expect(refused).toMatchObject({ status: 401, message: expect.stringContaining('Tessera:') });
  });

  it('a lease whose holder is not an agent (issued before roles were checked) is refused', async () => {
    const demoted = await enrolledAgent(env, 'demoted-bot@acme.local', { team: 'payments' });
    const openai = openaiFor((await lease('openai', 'chat', demoted)).credential);
    await openai.models.list();
    const store = await openStore(env.config.databaseUrl, { create: false });
    try {
      await store.db.updateTable('identities').set({ role: 'reviewer' }).where('address', '=', demoted.address).execute();
    } finally {
      await store.close();
    }
    expect(await openai.models.list().catch((error: unknown) => error)).toMatchObject({ status: 403, code: 'role_cannot_lease' });
  });

  it('an expired lease is refused at once, before the reaper gets to it', async () => {
    const openai = openaiFor((await agent.lease('openai', 'chat', 60)).credential as unknown as ApiCredential);
    await openai.models.list();
    env.clock.advance(61_000);
    try {
      expect(await openai.models.list().catch((error: unknown) => error)).toMatchObject({ status: 401, code: 'lease_token_inactive' });
    } finally {
      env.clock.advance(-61_000);
    }
  });

  it('audits every call (identity, lease, method, path, status, duration) and never a secret', async () => {
    const { lease_id, credential } = await lease('openai', 'chat');
    await openaiFor(credential).models.list();
    // proxy.response is written after the response, with a later batch: wait for that batch.
    await env.broker.proxy.auditDrained();
    const response = (await audit('proxy.response')).find((event) => event.details.lease_id === lease_id);
    expect(response).toMatchObject({
      actor: agent.identityId,
      outcome: 'success',
      details: { lease_id, backend: 'openai', role: 'chat', method: 'GET', path: '/v1/models', status: 200, duration_ms: expect.any(Number) },
    });
    expect((await audit('proxy.request')).some((event) => event.details.lease_id === lease_id)).toBe(true);
    expect((await audit('proxy.refused')).map((event) => event.reason)).toEqual(expect.arrayContaining(['scope_violation', 'constraint_violation', 'lease_token_inactive']));
    const everything = JSON.stringify(await admin.expect(200, 'GET', '/v1/admin/audit?limit=1000'));
    for (const secret of [STRIPE_SECRET, OPENAI_SECRET, HTTP_SECRET, credential.api_key]) expect(everything).not.toContain(secret);
  });
});
