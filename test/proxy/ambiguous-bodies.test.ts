/**
 * Parser differentials in the scope checks: a body a constraint reads must mean one thing, to the
 * broker and to any upstream parser. A constrained field that appears twice, or in a spelling some
 * parser reads as the same field (bracketed, percent-encoded, after `;` or a space), is refused
 * before the upstream; fields of the same name elsewhere (nested, inside values) are not. So is a
 * checked body with a query string (Stripe reads parameters from both) or declared as another media
 * type than the check parses (the upstream would parse it as declared).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENAI_PRESETS, STRIPE_PRESETS } from '../../src/backends/http-api/presets.js';
import { type BodyCheck, type BodyMediaType, compileScope, type Constraints, isRefusal, type ScopePreset } from '../../src/backends/http-api/scopes.js';
import { enrolledAgent, type TestAgent } from '../support/lease-env.js';
import { type ApiCredential, auditEvents, openaiFor, rawProxyCall, type StripeOpenAIEnv, startStripeOpenAIEnv, stripeFor } from './support.js';

const FORM: BodyMediaType = 'application/x-www-form-urlencoded';
const JSON_TYPE: BodyMediaType = 'application/json';

/** The body check a preset's rule runs for this request (no query string, the body declared as `contentType`) under these constraints. */
function bodyCheck(preset: ScopePreset | undefined, constraints: Constraints, method: string, path: string, contentType: string): BodyCheck {
  const verdict = compileScope(preset!, constraints).check(method, path, '', { 'content-type': contentType });
  if (verdict === null || isRefusal(verdict)) throw new Error(`${method} ${path}: no body check`);
  return verdict;
}

const refund = bodyCheck(STRIPE_PRESETS['refunds:write'], { max_amount: '5000' }, 'POST', '/v1/refunds', FORM);
const chat = bodyCheck(OPENAI_PRESETS.chat, { models: 'gpt-4o-mini' }, 'POST', '/v1/chat/completions', JSON_TYPE);
const check = (body: BodyCheck, text: string) => body(Buffer.from(text, 'utf8'));
const AMBIGUOUS = { code: 'invalid_request', message: expect.stringContaining('ambiguous') };

describe('scope body checks: ambiguous bodies', () => {
  it('Stripe max_amount: one plain amount is checked as before', () => {
    expect(check(refund, 'charge=ch_1&amount=4000')).toBeUndefined();
    expect(check(refund, 'charge=ch_1&amount=%34%30%30%30&metadata%5Bnote%5D=x')).toBeUndefined();
    expect(check(refund, 'charge=ch_1&amount=6000')).toMatchObject({ code: 'constraint_violation', message: 'refund amount 6000 exceeds max_amount 5000' });
    expect(check(refund, 'charge=ch_1')).toMatchObject({ code: 'constraint_violation', message: expect.stringContaining('explicit amount') });
  });

  it.each([
    ['Stripe max_amount', 'a repeated field (last wins in Rack)', 'charge=ch_1&amount=100&amount=999999'],
    ['Stripe max_amount', 'a repeated field (first wins elsewhere)', 'charge=ch_1&amount=999999&amount=100'],
    ['Stripe max_amount', 'a percent-encoded name', 'charge=ch_1&amount=100&%61mount=999999'],
    ['Stripe max_amount', 'an array after the field', 'charge=ch_1&amount=100&amount[]=999999'],
    ['Stripe max_amount', 'an array before the field', 'charge=ch_1&amount%5B%5D=999999&amount=100'],
    ['Stripe max_amount', 'an indexed array', 'charge=ch_1&amount=100&amount%5B0%5D=999999'],
    ['Stripe max_amount', 'leading brackets (Rack strips them)', 'charge=ch_1&amount=100&[amount]=999999'],
    ['Stripe max_amount', 'a trailing bracket', 'charge=ch_1&amount=100&amount]=999999'],
    ['Stripe max_amount', 'a ";" separator (Rack 2)', 'amount=100&charge=ch_1;amount=999999'],
    ['Stripe max_amount', 'a space after "&" (Rack 2 drops it)', 'charge=ch_1&amount=100& amount=999999'],
    ['Stripe max_amount', 'the array form alone', 'charge=ch_1&amount[]=100'],
    ['OpenAI models', 'a duplicated "model" (last wins in JSON.parse)', '{"model":"gpt-4.1","model":"gpt-4o-mini","messages":[]}'],
    ['OpenAI models', 'a duplicated "model" (first wins elsewhere)', '{"model":"gpt-4o-mini","messages":[],"model":"gpt-4.1"}'],
    ['OpenAI models', 'an escaped spelling of "model"', '{"model":"gpt-4.1","mod\\u0065l":"gpt-4o-mini"}'],
    ['OpenAI models', 'an escaped first "model" and whitespace before the colon', '{"\\u006dodel":"gpt-4o-mini","messages":[] ,\n "model"\n :\t"gpt-4o-mini"}'],
  ] as const)('%s: %s is refused', (constraint, _, body) => {
    expect(check(constraint === 'OpenAI models' ? chat : refund, body)).toEqual(AMBIGUOUS);
  });

  it('Stripe max_amount: "amount" nested or inside a value is another field', () => {
    expect(check(refund, 'charge=ch_1&amount=4000&metadata%5Bamount%5D=999999&reason=requested_by_customer')).toBeUndefined();
    expect(check(refund, 'charge=ch_1&amount=4000&metadata[amount]=999999&metadata[note]=amount%3D999999%26amount%3D1')).toBeUndefined();
    expect(check(refund, 'amount_details=x&charge=ch_1&amount=4000')).toBeUndefined();
  });

  it('OpenAI models: "model" nested, as a value or inside a string is another member', () => {
    const bodies = [
      '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"model"}]}',
      '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"say \\"model\\": 1","model":"gpt-4.1"}],"metadata":{"model":"gpt-4.1"}}',
      '{"messages":[{"role":"user","content":"a backslash \\\\"},{"role":"user","content":"\\\\\\"model\\\\\\""}],"model":"gpt-4o-mini","user":"model"}',
      '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"caf\\u00e9 \\u006dodel"}],"tools":[{"model":"x"}]}',
    ];
    for (const body of bodies) expect(check(chat, body), body).toBeUndefined();
    expect(check(chat, '{"model":"gpt-4.1","messages":[{"model":"gpt-4o-mini"}]}')).toMatchObject({ code: 'constraint_violation' });
  });
});

describe('scope checks: the query string and Content-Type of a checked body', () => {
  const refunds = compileScope(STRIPE_PRESETS['refunds:write']!, { max_amount: '5000' });
  const models = compileScope(OPENAI_PRESETS.chat!, { models: 'gpt-4o-mini' });
  const WRONG_TYPE = { code: 'invalid_request', message: expect.stringMatching(/reads the body of POST \/v1\/\S+ as application\/\S+: send it with that Content-Type/) };

  it('a route whose body a constraint checks takes no query string', () => {
    expect(refunds.check('POST', '/v1/refunds', 'amount=999999', { 'content-type': FORM })).toEqual(AMBIGUOUS);
    expect(refunds.check('POST', '/v1/refunds', 'expand[]=charge', { 'content-type': FORM })).toEqual(AMBIGUOUS);
    expect(models.check('POST', '/v1/chat/completions', 'model=gpt-4.1', { 'content-type': JSON_TYPE })).toEqual(AMBIGUOUS);
    expect(typeof refunds.check('POST', '/v1/refunds', '', { 'content-type': FORM })).toBe('function');
    // Where no body is checked, the query string is the upstream's business.
    expect(refunds.check('GET', '/v1/charges', 'limit=3', {})).toBeNull();
    expect(compileScope(STRIPE_PRESETS['refunds:write']!, {}).check('POST', '/v1/refunds', 'amount=999999', { 'content-type': FORM })).toBeNull();
  });

  it.each([
    [FORM, 'accepts', 'application/x-www-form-urlencoded'],
    [FORM, 'accepts', 'Application/X-WWW-Form-URLEncoded'],
    [FORM, 'accepts', 'application/x-www-form-urlencoded; charset=utf-8'],
    [FORM, 'accepts', 'application/x-www-form-urlencoded;charset="UTF-8"'],
    [FORM, 'refuses', undefined],
    [FORM, 'refuses', 'application/json'],
    [FORM, 'refuses', 'multipart/form-data; boundary=x'],
    [FORM, 'refuses', 'application/x-www-form-urlencoded-x'],
    [FORM, 'refuses', 'application/x-www-form-urlencoded; charset=utf-16'],
    [JSON_TYPE, 'accepts', 'application/json'],
    [JSON_TYPE, 'accepts', 'APPLICATION/JSON ; Charset=UTF-8'],
    [JSON_TYPE, 'accepts', 'application/json; foo=bar'],
    [JSON_TYPE, 'refuses', undefined],
    [JSON_TYPE, 'refuses', 'application/x-www-form-urlencoded'],
    [JSON_TYPE, 'refuses', 'text/plain'],
    [JSON_TYPE, 'refuses', 'application/jsonx'],
    [JSON_TYPE, 'refuses', 'application/json; charset=utf-8; charset=utf-16le'],
  ] as const)('a %s check %s Content-Type %j', (mediaType, outcome, contentType) => {
    const verdict = mediaType === FORM ? refunds.check('POST', '/v1/refunds', '', { 'content-type': contentType }) : models.check('POST', '/v1/chat/completions', '', { 'content-type': contentType });
    if (outcome === 'accepts') expect(typeof verdict).toBe('function');
    else expect(verdict).toEqual(WRONG_TYPE);
  });

  it.each([
    ['accepts', undefined],
    ['accepts', 'identity'],
    ['accepts', ' Identity '],
    ['refuses', 'gzip'],
    ['refuses', 'br'],
    ['refuses', 'identity, gzip'],
  ] as const)('a body check %s Content-Encoding %j', (outcome, contentEncoding) => {
    const verdict = refunds.check('POST', '/v1/refunds', '', { 'content-type': FORM, ...(contentEncoding && { 'content-encoding': contentEncoding }) });
    if (outcome === 'accepts') expect(typeof verdict).toBe('function');
    else expect(verdict).toEqual({ code: 'invalid_request', message: expect.stringContaining('without Content-Encoding') });
  });
});

describe('credential proxy: ambiguous bodies never reach the upstream', () => {
  let proxy: StripeOpenAIEnv;
  let agent: TestAgent;
  const lease = async (backend: string, role: string) => ((await agent.lease(backend, role)) as unknown as { credential: ApiCredential }).credential;

  beforeAll(async () => {
    proxy = await startStripeOpenAIEnv();
    agent = await enrolledAgent(proxy.env, 'parser-bot@acme.local');
    const grant = (backend: string, role: string, constraints: Record<string, string>) =>
      proxy.admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend, role, max_ttl_seconds: 600, constraints });
    await grant('stripe', 'refunds:write', { max_amount: '5000' });
    await grant('openai', 'chat', { models: 'gpt-4o-mini' });
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('Stripe: a second, bracketed amount is refused in Stripe\'s format; the official client still refunds', async () => {
    const credential = await lease('stripe', 'refunds:write');
    const before = proxy.stripeUpstream.seen.length;
    for (const body of ['charge=ch_1&amount=100&amount=999999', 'charge=ch_1&amount=100&[amount]=999999']) {
      const refused = await rawProxyCall(credential, { method: 'POST', path: '/v1/refunds', body, contentType: 'application/x-www-form-urlencoded' });
      expect(refused).toEqual({
        status: 400,
        body: { error: { type: 'invalid_request_error', code: 'invalid_request', message: expect.stringMatching(/^Tessera: .*ambiguous/) } },
      });
    }
    expect(proxy.stripeUpstream.seen.length).toBe(before);

    const refund = await stripeFor(credential).refunds.create({ charge: 'ch_1', amount: 4000, metadata: { amount: '999999' } });
    expect(refund).toMatchObject({ object: 'refund', amount: 4000 });
    expect(proxy.stripeUpstream.seen.length).toBe(before + 1);
  });

  it('OpenAI: a duplicated model is refused in OpenAI\'s format; "model" in a message still passes', async () => {
    const credential = await lease('openai', 'chat');
    const before = proxy.openaiUpstream.seen.length;
    const refused = await rawProxyCall(credential, {
      method: 'POST',
      path: '/v1/chat/completions',
      body: '{"model":"gpt-4.1","messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}',
      contentType: 'application/json',
    });
    expect(refused).toEqual({
      status: 400,
      body: { error: { type: 'invalid_request_error', code: 'invalid_request', param: null, message: expect.stringMatching(/^Tessera: .*ambiguous/) } },
    });
    expect(proxy.openaiUpstream.seen.length).toBe(before);

    const completion = await openaiFor(credential).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: '{"model":"gpt-4.1"}' }] });
    expect(completion.model).toBe('gpt-4o-mini');
    expect(proxy.openaiUpstream.seen.length).toBe(before + 1);

    const refusals = (await auditEvents(proxy.admin, 'proxy.refused')).filter((event) => event.reason === 'invalid_request');
    expect(refusals.map((event) => event.details.path)).toEqual(['/v1/refunds', '/v1/refunds', '/v1/chat/completions']);
  });

  it('Stripe: a query string next to a checked body is refused; so is a body declared as JSON', async () => {
    const credential = await lease('stripe', 'refunds:write');
    const before = proxy.stripeUpstream.seen.length;
    const refusedAs = (code: string, message: RegExp) => ({ status: 400, body: { error: { type: 'invalid_request_error', code, message: expect.stringMatching(message) } } });
    const overLimitInQuery = await rawProxyCall(credential, { method: 'POST', path: '/v1/refunds?amount=999999', body: 'charge=ch_1&amount=100', contentType: FORM });
    expect(overLimitInQuery).toEqual(refusedAs('invalid_request', /^Tessera: the request is ambiguous: POST \/v1\/refunds takes no query string/));
    // As form fields, `amount=100` (inside the JSON string); as JSON, which the upstream is told it is, 999999.
    const jsonBody = '{"charge":"ch_1","amount":999999,"note":"&amount=100&x="}';
    for (const contentType of ['application/json', undefined]) {
      expect(await rawProxyCall(credential, { method: 'POST', path: '/v1/refunds', body: jsonBody, ...(contentType && { contentType }) })).toEqual(
        refusedAs('invalid_request', /^Tessera: a constraint reads the body of POST \/v1\/refunds as application\/x-www-form-urlencoded/),
      );
    }
    expect(proxy.stripeUpstream.seen.length).toBe(before);

    const declared = await rawProxyCall(credential, { method: 'POST', path: '/v1/refunds', body: 'charge=ch_1&amount=100', contentType: 'Application/X-WWW-Form-URLEncoded; charset=UTF-8' });
    expect(declared).toMatchObject({ status: 200, body: { object: 'refund', amount: 100 } });
    expect(proxy.stripeUpstream.seen.length).toBe(before + 1);
  });

  it('OpenAI: a query string next to a checked body is refused; so is a body declared as a form', async () => {
    const credential = await lease('openai', 'chat');
    const before = proxy.openaiUpstream.seen.length;
    const refusedAs = (message: RegExp) => ({ status: 400, body: { error: { type: 'invalid_request_error', code: 'invalid_request', param: null, message: expect.stringMatching(message) } } });
    const body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"&model=gpt-4.1&"}]}';
    expect(await rawProxyCall(credential, { method: 'POST', path: '/v1/chat/completions?model=gpt-4.1', body, contentType: JSON_TYPE })).toEqual(
      refusedAs(/^Tessera: the request is ambiguous: POST \/v1\/chat\/completions takes no query string/),
    );
    // As JSON, gpt-4o-mini; as the form the upstream is told it is, model=gpt-4.1.
    expect(await rawProxyCall(credential, { method: 'POST', path: '/v1/chat/completions', body, contentType: FORM })).toEqual(
      refusedAs(/^Tessera: a constraint reads the body of POST \/v1\/chat\/completions as application\/json/),
    );
    expect(proxy.openaiUpstream.seen.length).toBe(before);

    const declared = await rawProxyCall(credential, { method: 'POST', path: '/v1/chat/completions', body, contentType: 'application/json; charset=utf-8' });
    expect(declared).toMatchObject({ status: 200, body: { model: 'gpt-4o-mini' } });
    // Listing models (no body check) keeps its query string.
    expect(await rawProxyCall(credential, { method: 'GET', path: '/v1/models?limit=1' })).toMatchObject({ status: 200 });
    expect(proxy.openaiUpstream.seen.slice(before).map((request) => request.path)).toEqual(['/v1/chat/completions', '/v1/models?limit=1']);
  });
});
