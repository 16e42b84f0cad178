/** Proxy tests: a broker whose credential proxy listens on its own loopback port. */
import OpenAI from 'openai';
import Stripe from 'stripe';
import { Client } from 'undici';
import type { ApiCredential } from '@tessera-broker/sdk/wire';
import { startTestBroker, type TestBroker, type TestBrokerOptions } from '../support/broker.js';
import { type FakeOpenAI, type FakeUpstream, startFakeOpenAI, startFakeStripe } from '../support/fake-upstream.js';
import { adminAgent, type TestAgent } from '../support/lease-env.js';

export type { ApiCredential } from '@tessera-broker/sdk/wire';

export const STRIPE_SECRET = 'sk_test_real_stripe_secret_0123456789';
export const OPENAI_SECRET = 'sk-real-openai-secret-0123456789';

export function startProxyBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  return startTestBroker({ ...options, proxy: true });
}

/** Options for `new Stripe(api_key, ...)` from a lease's base_url. */
export function stripeOptions(credential: ApiCredential) {
  const url = new URL(credential.base_url);
  return { host: url.hostname, port: Number(url.port), protocol: url.protocol.slice(0, -1) as 'http' | 'https', maxNetworkRetries: 0 };
}

/** The official clients pointed at a lease's credential, without retries. */
export const stripeFor = (credential: ApiCredential) => new Stripe(credential.api_key, stripeOptions(credential));
export const openaiFor = (credential: ApiCredential) => new OpenAI({ apiKey: credential.api_key, baseURL: `${credential.base_url}/v1`, maxRetries: 0 });

/** A proxy broker with fake Stripe and OpenAI upstreams, registered as backends `stripe` and `openai`. */
export interface StripeOpenAIEnv {
  readonly env: TestBroker;
  readonly admin: TestAgent;
  readonly stripeUpstream: FakeUpstream;
  readonly openaiUpstream: FakeOpenAI;
  close(): Promise<void>;
}

export async function startStripeOpenAIEnv(options: TestBrokerOptions = {}): Promise<StripeOpenAIEnv> {
  const [stripeUpstream, openaiUpstream] = await Promise.all([
    startFakeStripe(STRIPE_SECRET),
    startFakeOpenAI({ apiKey: OPENAI_SECRET, adminKey: 'unused', projectId: 'proj_1' }),
  ]);
  const env = await startProxyBroker(options);
  const admin = await adminAgent(env);
  await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'stripe', type: 'stripe', secret_key: STRIPE_SECRET, upstream_url: stripeUpstream.url });
  await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'openai', type: 'openai', api_key: OPENAI_SECRET, upstream_url: openaiUpstream.url });
  return {
    env,
    admin,
    stripeUpstream,
    openaiUpstream,
    async close() {
      await env.close();
      await Promise.all([stripeUpstream.close(), openaiUpstream.close()]);
    },
  };
}

export interface AuditEvent {
  action: string;
  outcome: string;
  reason: string | null;
  actor: string | null;
  details: Record<string, unknown>;
}

/** The audit events of one action, oldest first, as the admin API lists them. */
export async function auditEvents(admin: TestAgent, action: string): Promise<AuditEvent[]> {
  return (await admin.expect<{ events: AuditEvent[] }>(200, 'GET', `/v1/admin/audit?action=${action}&limit=1000`)).events;
}

/** One request through the proxy with exactly these bytes, as no official client would send them. */
export async function rawProxyCall(
  credential: ApiCredential,
  request: { method: string; path: string; body?: string; contentType?: string },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const client = new Client(credential.base_url);
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${credential.api_key}` };
    if (request.contentType !== undefined) headers['content-type'] = request.contentType;
    const reply = await client.request({ method: request.method as 'POST', path: request.path, headers, ...(request.body !== undefined && { body: request.body }) });
    return { status: reply.statusCode, body: (await reply.body.json()) as Record<string, unknown> };
  } finally {
    await client.close();
  }
}
