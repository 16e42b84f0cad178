/**
 * The form of a proxied request, checked before its scope: what the proxy parses is parsed in
 * linear time, never from a header longer than the proxy reads.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STRIPE_PRESETS } from '../../src/backends/http-api/presets.js';
import { compileScope, declaresMediaType } from '../../src/backends/http-api/scopes.js';
import { MAX_PARSED_HEADER_LENGTH } from '../../src/proxy/request-shape.js';
import { type FakeUpstream, sendJson, startFakeUpstream } from '../support/fake-upstream.js';
import { enrolledAgent } from '../support/lease-env.js';
import { type ApiCredential, type StripeOpenAIEnv, startStripeOpenAIEnv } from './support.js';

const FORM = 'application/x-www-form-urlencoded';
/** 1 MiB of blanks: a run of optional white space followed by other text cost a regex time quadratic in its length. */
const BLANKS = ' \t'.repeat(512 * 1024);

describe('scope checks: Content-Type and Content-Encoding are parsed in linear time', () => {
  // Each of these took the old `[ \t]+$` trimming regex minutes; a timeout of the test is the regression signal.
  it('a 1 MiB run of blanks inside a Content-Type is answered at once', () => {
    expect(declaresMediaType(`${FORM}${BLANKS}x`, FORM)).toBe(false);
    expect(declaresMediaType(`${FORM};${BLANKS}charset${BLANKS}=${BLANKS}utf-16${BLANKS}x`, FORM)).toBe(false);
    expect(declaresMediaType(`${BLANKS}${FORM}${BLANKS};${BLANKS}charset=utf-8${BLANKS}`, FORM)).toBe(true);
  });

  it('a 1 MiB run of blanks inside a Content-Encoding is answered at once', () => {
    const refunds = compileScope(STRIPE_PRESETS['refunds:write']!, { max_amount: '5000' });
    const verdict = refunds.check('POST', '/v1/refunds', '', { 'content-type': FORM, 'content-encoding': `identity${BLANKS}x` });
    expect(verdict).toEqual({ code: 'invalid_request', message: expect.stringContaining('without Content-Encoding') });
    expect(typeof refunds.check('POST', '/v1/refunds', '', { 'content-type': FORM, 'content-encoding': `${BLANKS}identity${BLANKS}` })).toBe('function');
  });
});

interface RawReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * One request as written: node:http sends the path exactly as given (no normalisation, unlike
 * fetch) and headers the official clients never send.
 */
function rawRequest(credential: ApiCredential, request: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<RawReply> {
  const url = new URL(credential.base_url);
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${credential.api_key}`, ...request.headers };
    const outgoing = httpRequest({ host: url.hostname, port: url.port, method: request.method ?? 'GET', path: request.path, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        outgoing.destroy();
        resolve({ status: response.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> });
      });
    });
    outgoing.on('error', reject).end(request.body);
  });
}

describe('credential proxy: the form of a request is checked before its scope', () => {
  let proxy: StripeOpenAIEnv;
  let items: FakeUpstream;
  let stripe: ApiCredential;
  let api: ApiCredential;
  const refund = { method: 'POST', path: '/v1/refunds', body: 'charge=ch_1&amount=100' };

  beforeAll(async () => {
    items = await startFakeUpstream((request, response) => sendJson(response, 200, { path: request.path }));
    proxy = await startStripeOpenAIEnv();
    await proxy.admin.expect(201, 'POST', '/v1/admin/backends', {
      name: 'items',
      type: 'http',
      upstream_url: `${items.url}/base`,
      secret: 'real-items-secret-0123456789',
      scopes: { reader: [{ methods: ['GET'], path_prefix: '/api' }] },
    });
    const agent = await enrolledAgent(proxy.env, 'shape-bot@acme.local');
    const grant = (backend: string, role: string, constraints: Record<string, string> = {}) =>
      proxy.admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend, role, max_ttl_seconds: 600, constraints });
    await grant('stripe', 'refunds:write', { max_amount: '5000' });
    await grant('items', 'reader');
    const credential = async (backend: string, role: string) => ((await agent.lease(backend, role)) as unknown as { credential: ApiCredential }).credential;
    stripe = await credential('stripe', 'refunds:write');
    api = await credential('items', 'reader');
  });
  afterAll(async () => {
    await proxy?.close();
    await items?.close();
  });

  const stripeRefusal = (message: unknown) => ({ status: 400, body: { error: { type: 'invalid_request_error', code: 'invalid_request', message } } });
  const httpRefusal = (message: unknown) => ({ status: 400, body: { error: 'invalid_request', message } });

  it('headers it parses are refused unread beyond MAX_PARSED_HEADER_LENGTH, before the scope check', async () => {
    const before = proxy.stripeUpstream.seen.length;
    // Near node's 16 KiB header limit: the old trimming regex spent ~0.25 s on each. (Node trims trailing blanks itself.)
    const blanks = ' \t'.repeat(7000);
    const tooLong = expect.stringMatching(/^Tessera: The content-(?:type|encoding) header is longer than 1024 characters\.$/);
    expect(await rawRequest(stripe, { ...refund, headers: { 'content-type': `${FORM}${blanks}x` } })).toEqual(stripeRefusal(tooLong));
    expect(await rawRequest(stripe, { ...refund, headers: { 'content-type': FORM, 'content-encoding': `identity${blanks}x` } })).toEqual(stripeRefusal(tooLong));
    expect(proxy.stripeUpstream.seen.length).toBe(before);
    // The token header is refused before it is read: no backend is known yet, so in the default (OpenAI) shape.
    expect(await rawRequest(stripe, { ...refund, headers: { 'content-type': FORM, authorization: `Bearer ${stripe.api_key}${'x'.repeat(1000)}` } })).toEqual({
      status: 400,
      body: { error: { type: 'invalid_request_error', code: 'invalid_request', param: null, message: 'Tessera: The authorization header is longer than 1024 characters.' } },
    });
    const atTheLimit = `${FORM}; a=`.padEnd(MAX_PARSED_HEADER_LENGTH, 'b');
    expect(await rawRequest(stripe, { ...refund, headers: { 'content-type': atTheLimit } })).toMatchObject({ status: 200, body: { object: 'refund', amount: 100 } });
    expect(proxy.stripeUpstream.seen.at(-1)?.headers['content-type']).toBe(atTheLimit);
  });
});
