/**
 * The form of a proxied request, checked before its scope: what the proxy parses is parsed in
 * linear time, never from a header longer than the proxy reads.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STRIPE_PRESETS } from '../../src/backends/http-api/presets.js';
import { compileScope, declaresMediaType } from '../../src/backends/http-api/scopes.js';
import { MAX_PARSED_HEADER_LENGTH, pathProblem, requestFormProblem, tokenHeaderProblem } from '../../src/proxy/request-shape.js';
import { type FakeUpstream, sendJson, startFakeUpstream } from '../support/fake-upstream.js';
import { enrolledAgent } from '../support/lease-env.js';
import { type ApiCredential, type StripeOpenAIEnv, startStripeOpenAIEnv } from './support.js';

const FORM = 'application/x-www-form-urlencoded';
/** 1 MiB of blanks: a run of optional white space followed by other text cost a regex time quadratic in its length. */
const BLANKS = ' \t'.repeat(512 * 1024);

describe('scope checks: Content-Type and Content-Encoding are parsed in linear time', () => {
  // The old `[ \t]+$` trimming regex spent many minutes on each (it blocks, so vitest cannot time it out early): a test that never ends is the regression signal.
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

describe('request form: headers the proxy parses are length-checked first', () => {
  it('a 1 MiB Content-Type, Content-Encoding, Connection or token header is refused before it is parsed', () => {
    const huge = `${FORM}${BLANKS}x`;
    for (const name of ['content-type', 'content-encoding', 'connection']) {
      expect(requestFormProblem('/v1/refunds', { [name]: huge })).toBe(`The ${name} header is longer than ${MAX_PARSED_HEADER_LENGTH} characters.`);
    }
    expect(tokenHeaderProblem({ authorization: `Bearer ${huge}` })).toBe(`The authorization header is longer than ${MAX_PARSED_HEADER_LENGTH} characters.`);
    expect(tokenHeaderProblem({ 'x-api-key': huge })).toBe(`The x-api-key header is longer than ${MAX_PARSED_HEADER_LENGTH} characters.`);
    expect(requestFormProblem('/v1/refunds', { 'content-type': FORM.padEnd(MAX_PARSED_HEADER_LENGTH, ' '), connection: 'keep-alive' })).toBeUndefined();
  });
});

describe('pathProblem: only canonical paths reach the scope check', () => {
  it.each([
    '/',
    '/v1/refunds',
    '/v1/refunds/',
    '/v1/models/gpt-4.1',
    '/v1/models/ft:gpt-4o-mini:acme::B1x2',
    '/api/items/a..b/..c/c../.x',
    "/api/items/a%20b%41%7e/-._~!$&'()*+,=:@",
    '/api/items/caf%C3%A9/%e0%a4%85/%F0%9F%94%91',
  ])('accepts %j', (path) => {
    expect(pathProblem(path)).toBeUndefined();
  });

  it.each([
    ['v1/refunds', 'must start with "/"'],
    ['', 'must start with "/"'],
    ['*', 'must start with "/"'],
    ['http://upstream/v1/refunds', 'must start with "/"'],
    ['/v1/../admin', 'a dot segment'],
    ['/v1/./refunds', 'a dot segment'],
    ['/v1/refunds/..', 'a dot segment'],
    ['/v1/refunds/.', 'a dot segment'],
    ['/v1/.../refunds', 'a dot segment'],
    ['/..', 'a dot segment'],
    ['/v1//refunds', 'an empty segment'],
    ['//v1/refunds', 'an empty segment'],
    ['/v1/items/..;/admin', 'a ";" parameter'],
    ['/v1/items;jsessionid=1/x', 'a ";" parameter'],
    ['/v1/items/%2e%2e/admin', 'an encoded'],
    ['/v1/items/%2E%2e/admin', 'an encoded'],
    ['/v1/items/.%2e/admin', 'an encoded'],
    ['/v1/items/%2e/admin', 'an encoded'],
    ['/v1/items/%252e%252e/admin', 'an encoded'],
    ['/v1/items%2fadmin', 'an encoded'],
    ['/v1/items%2Fadmin', 'an encoded'],
    ['/v1/items%5cadmin', 'an encoded'],
    ['/v1/items%5C..%5Cadmin', 'an encoded'],
    ['/v1/items%252fadmin', 'an encoded'],
    ['/v1/items/%3b/admin', 'an encoded'],
    ['/v1/items\\..\\admin', 'the character "\\\\"'],
    ['/v1/items/x#/../admin', 'the character "#"'],
    ['/v1/items/a b', 'the character " "'],
    ['/v1/items/caf\u00e9', 'the character'],
    ['/v1/items/%c0%ae%c0%ae/admin', 'an overlong UTF-8 escape'],
    ['/v1/items/%C1%9C', 'an overlong UTF-8 escape'],
    ['/v1/items/%e0%80%ae', 'an overlong UTF-8 escape'],
    ['/v1/items/%f0%80%80%ae', 'an overlong UTF-8 escape'],
    ['/v1/items/%zz', 'a malformed %-escape'],
    ['/v1/items/%2', 'a malformed %-escape'],
    ['/v1/items/%', 'a malformed %-escape'],
  ])('refuses %j (%s)', (path, why) => {
    expect(pathProblem(path)).toEqual(expect.stringContaining(why));
    expect(pathProblem(path)).toMatch(/^The request path is not in canonical form \(/);
  });

  it('is one pass: a 1 MiB path is answered at once', () => {
    expect(pathProblem(`/v1/${'a/'.repeat(512 * 1024)}`)).toBeUndefined();
    expect(pathProblem(`/v1/${'./'.repeat(512 * 1024)}`)).toEqual(expect.stringContaining('a dot segment'));
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

  it('non-canonical paths are refused before the scope check, in the upstream\'s format, and never forwarded', async () => {
    const before = items.seen.length;
    const paths = ['/api/x/../admin', '/api/x/%2e%2e/admin', '/api/x/.%2E/admin', '/api/x/%252e%252e/admin', '/api/x/..;/admin', '/api;v=1/x', '/api/x%2fadmin', '/api/x%252Fadmin', '/api/x%5cadmin', '/api/x\\..\\admin', '/api//x', '/api/x/%3B', '/api/x/%c0%ae%c0%ae/admin', '/admin/../api/x'];
    for (const path of paths) {
      expect(await rawRequest(api, { path }), path).toEqual(httpRefusal(expect.stringMatching(/^Tessera: The request path is not in canonical form/)));
    }
    expect(items.seen.length).toBe(before);
    expect(await rawRequest(api, { path: '/api/x/a..b/%41?q=../%2e' })).toEqual({ status: 200, body: { path: '/base/api/x/a..b/%41?q=../%2e' } });
  });

  it('method and URL override headers never reach the upstream; other headers do', async () => {
    const overrides = {
      'x-http-method-override': 'DELETE',
      'X-HTTP-Method': 'DELETE',
      'x-method-override': 'DELETE',
      'x-original-method': 'DELETE',
      'x-original-url': '/admin',
      'x-original-uri': '/admin',
      'x-rewrite-url': '/admin',
      'x-forwarded-uri': '/admin',
      'x-forwarded-path': '/admin',
      'x-forwarded-prefix': '/admin',
    };
    expect(await rawRequest(api, { path: '/api/x', headers: { ...overrides, 'x-request-id': 'req_1' } })).toEqual({ status: 200, body: { path: '/base/api/x' } });
    const seen = items.seen.at(-1)!;
    expect(seen).toMatchObject({ method: 'GET', path: '/base/api/x', authorization: 'Bearer real-items-secret-0123456789' });
    expect(seen.headers['x-request-id']).toBe('req_1');
    for (const name of Object.keys(overrides)) expect(seen.headers, name).not.toHaveProperty(name.toLowerCase());
  });

  it('a Connection header naming anything but a hop-by-hop header is refused; the upstream gets the Content-Type the check parsed', async () => {
    const before = proxy.stripeUpstream.seen.length;
    const named = ['content-type', 'Content-Length', 'content-encoding', 'transfer-encoding', 'authorization', 'x-api-key', 'host', 'Keep-Alive, Content-Type', 'x-custom'];
    for (const connection of named) {
      expect(await rawRequest(stripe, { ...refund, headers: { 'content-type': FORM, connection } }), connection).toEqual(
        stripeRefusal(expect.stringMatching(/^Tessera: Connection may name only hop-by-hop headers, not "[a-z-]+"\.$/)),
      );
    }
    expect(proxy.stripeUpstream.seen.length).toBe(before);

    const contentType = 'Application/X-WWW-Form-URLEncoded ;charset="UTF-8"';
    const reply = await rawRequest(stripe, { ...refund, headers: { 'content-type': contentType, connection: 'Keep-Alive, TE', te: 'trailers' } });
    expect(reply).toMatchObject({ status: 200, body: { object: 'refund', amount: 100 } });
    const seen = proxy.stripeUpstream.seen.at(-1)!.headers;
    expect(seen['content-type']).toBe(contentType);
    expect(seen).not.toHaveProperty('te');
  });
});

