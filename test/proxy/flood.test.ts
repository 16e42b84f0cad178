import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrolledAgent } from '../support/lease-env.js';
import { rejectionMark, rejectionsSince } from '../support/rejections.js';
import { type ApiCredential, type StripeOpenAIEnv, startStripeOpenAIEnv } from './support.js';

const LIMIT = 4;
const WINDOW_MS = 10_000;

/** One GET through the proxy with `apiKey` (or none), sent from the loopback address `source`. */
function call(proxyUrl: string, source: string, apiKey?: string): Promise<{ status: number; retryAfter: string | undefined; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const url = new URL('/v1/charges/ch_1', proxyUrl);
    const sent = request(url, { localAddress: source, agent: false, headers: apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { error?: { code?: string } };
        resolve({ status: response.statusCode!, retryAfter: response.headers['retry-after'], code: body.error?.code });
      });
    });
    sent.on('error', reject);
    sent.end();
  });
}

describe('credential proxy: a flood of unknown lease tokens', () => {
  let proxy: StripeOpenAIEnv;
  let credential: ApiCredential;
  beforeAll(async () => {
    proxy = await startStripeOpenAIEnv({ env: { TESSERA_AUTH_FAILURE_LIMIT: String(LIMIT), TESSERA_AUTH_FAILURE_WINDOW: `${WINDOW_MS / 1000}s` } });
    const agent = await enrolledAgent(proxy.env, 'flood-bot@acme.local', { team: 'payments' });
    await proxy.admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: 'stripe', role: 'refunds:write', max_ttl_seconds: 600 });
    credential = ((await agent.lease('stripe', 'refunds:write')) as unknown as { credential: ApiCredential }).credential;
  });
  afterAll(() => proxy?.close());

  it('answers 429 rate_limited with Retry-After once an address sent too many, counts them in one summary, and serves other addresses', async () => {
    const { env } = proxy;
    env.clock.advance(WINDOW_MS - (env.clock.now() % WINDOW_MS));
    const mark = await rejectionMark(env);
    const junk = Array.from({ length: LIMIT }, (_, i) => `tsk_junk-${i}`);
    for (const token of junk) expect(await call(credential.base_url, '127.0.0.3', token)).toMatchObject({ status: 401, code: 'lease_token_invalid' });
    const limited = await call(credential.base_url, '127.0.0.3', 'tsk_junk-more');
    expect(limited).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(Number(limited.retryAfter)).toBeGreaterThan(0);
    expect(Number(limited.retryAfter)).toBeLessThanOrEqual(WINDOW_MS / 1000);
    // The limited address is refused before its token is even looked up, valid or not.
    expect((await call(credential.base_url, '127.0.0.3', credential.api_key)).status).toBe(429);
    expect((await call(credential.base_url, '127.0.0.4', credential.api_key)).status).toBe(200);

    const { summaries, counts } = await rejectionsSince(env, mark);
    expect(summaries).toBeLessThanOrEqual(2);
    expect(counts).toEqual([
      expect.objectContaining({ source: '127.0.0.3', action: 'proxy.refused', reason: 'lease_token_invalid', count: LIMIT }),
      expect.objectContaining({ source: '127.0.0.3', action: 'proxy.refused', reason: 'rate_limited', count: 2 }),
    ]);

    env.clock.advance(WINDOW_MS);
    expect((await call(credential.base_url, '127.0.0.3', credential.api_key)).status).toBe(200);
  });
});
