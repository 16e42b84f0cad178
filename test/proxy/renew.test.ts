/**
 * Renewing proxied leases (Stripe, OpenAI) with the official clients: the proxy honours the moved
 * expiry, never beyond the grant's max TTL, and a revoked lease stays dead whatever renewal is tried.
 * Time moves with the broker's test clock (proofs are stamped by it too); the reaper runs when the test ticks the scheduler.
 */
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrolledAgent, type TestAgent } from '../support/lease-env.js';
import { type ApiCredential, auditEvents, openaiFor, type StripeOpenAIEnv, startStripeOpenAIEnv, stripeFor } from './support.js';

const MAX_TTL_S = 300;
const DEFAULT_TTL_S = 60;

interface ProxiedLease {
  lease_id: string;
  expires_at: string;
  credential: ApiCredential;
}
interface Renewal {
  lease_id: string;
  expires_at: string;
  renewable: boolean;
}
interface LeaseRecord {
  state: string;
  expires_at: string;
  max_expires_at: string;
  renewable: boolean;
}

describe('credential proxy: renewing proxied leases', () => {
  let proxy: StripeOpenAIEnv;
  let agent: TestAgent;
  /** Enrolled before the clock moves: provisioning signs by the real clock. */
  let doomed: TestAgent;
  let suspect: TestAgent;
  const advance = (seconds: number) => proxy.env.clock.advance(seconds * 1000);
  const lease = async (backend: string, role: string, ttlSeconds?: number) => (await agent.lease(backend, role, ttlSeconds)) as unknown as ProxiedLease;
  const renew = (id: string, ttlSeconds?: number) => agent.send<Renewal & { error?: string; message?: string }>('POST', `/v1/leases/${id}/renew`, ttlSeconds === undefined ? {} : { ttl_seconds: ttlSeconds });
  const record = (id: string) => agent.expect<LeaseRecord>(200, 'GET', `/v1/leases/${id}`);
  const eventsOf = async (action: string, leaseId: string) => (await auditEvents(proxy.admin, action)).filter((event) => event.details.lease_id === leaseId);

  beforeAll(async () => {
    proxy = await startStripeOpenAIEnv();
    agent = await enrolledAgent(proxy.env, 'renewing-bot@acme.local', { team: 'payments' });
    doomed = await enrolledAgent(proxy.env, 'doomed-renewer@acme.local', { team: 'payments' });
    suspect = await enrolledAgent(proxy.env, 'suspected-clone@acme.local', { team: 'payments' });
    const grant = (backend: string, role: string, constraints: Record<string, string>) =>
      proxy.admin.expect(201, 'POST', '/v1/admin/grants', { subject: 'attr:team=payments', backend, role, max_ttl_seconds: MAX_TTL_S, default_ttl_seconds: DEFAULT_TTL_S, constraints });
    await grant('stripe', 'refunds:write', { max_amount: '5000' });
    await grant('openai', 'chat', { models: 'gpt-4o-mini' });
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('a renewed Stripe lease keeps working past its original expiry, while an unrenewed twin is reaped', async () => {
    const renewed = await lease('stripe', 'refunds:write', DEFAULT_TTL_S);
    const twin = await lease('stripe', 'refunds:write', DEFAULT_TTL_S);
    const stripe = stripeFor(renewed.credential);
    await stripe.charges.retrieve('ch_1');

    advance(50);
    const renewal = await renew(renewed.lease_id, DEFAULT_TTL_S);
    expect(renewal).toMatchObject({ status: 200, body: { lease_id: renewed.lease_id, renewable: true } });
    const newExpiry = Date.parse(renewal.body.expires_at);
    expect(newExpiry - Date.parse(renewed.expires_at)).toBeGreaterThanOrEqual(49_000);

    // 70 s after issue: 10 s past the original expiry, 40 s before the renewed one.
    advance(20);
    await proxy.env.scheduler.tick(); // the reaper's run
    expect((await record(twin.lease_id)).state).toBe('expired');
    expect(await record(renewed.lease_id)).toMatchObject({ state: 'active', expires_at: renewal.body.expires_at });
    expect(await stripe.refunds.create({ charge: 'ch_1', amount: 4000 })).toMatchObject({ object: 'refund', amount: 4000 });
    // Renewal moves the expiry only: the grant's constraints still apply.
    expect(await stripe.refunds.create({ charge: 'ch_1', amount: 6000 }).catch((error: unknown) => error)).toMatchObject({ statusCode: 403, code: 'constraint_violation' });
    expect(await stripeFor(twin.credential).charges.retrieve('ch_1').catch((error: unknown) => error)).toMatchObject({ statusCode: 401, code: 'lease_token_inactive' });

    expect(await eventsOf('lease.renewed', renewed.lease_id)).toEqual([
      expect.objectContaining({
        actor: agent.identityId,
        outcome: 'success',
        details: { lease_id: renewed.lease_id, backend: 'stripe', role: 'refunds:write', expires_at: newExpiry, renewable: true },
      }),
    ]);
    expect(await eventsOf('lease.renewed', twin.lease_id)).toEqual([]);

    // Past the renewed expiry too, the proxy refuses it before the reaper does.
    advance(41);
    expect(await stripe.charges.retrieve('ch_1').catch((error: unknown) => error)).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
  });

  it('renewals stop at the grant\'s max TTL: then the OpenAI lease expires and cannot be renewed', async () => {
    const issued = await lease('openai', 'chat', DEFAULT_TTL_S);
    const openai = openaiFor(issued.credential);
    const { max_expires_at: maxExpiresAt } = await record(issued.lease_id);
    expect(Date.parse(maxExpiresAt) - Date.parse(issued.expires_at)).toBe((MAX_TTL_S - DEFAULT_TTL_S) * 1000);

    advance(50);
    // Asking for more than the grant allows is capped at issue + max TTL, and says so.
    expect(await renew(issued.lease_id, 3 * MAX_TTL_S)).toMatchObject({ status: 200, body: { expires_at: maxExpiresAt, renewable: false } });

    // 10 s before the cap: long past the first TTL, still served; a default renewal stays capped.
    advance(MAX_TTL_S - 50 - 10);
    expect((await openai.models.list()).data.map((model) => model.id)).toEqual(['gpt-4o-mini']);
    expect(await renew(issued.lease_id)).toMatchObject({ status: 200, body: { expires_at: maxExpiresAt, renewable: false } });
    advance(11);
    expect(await openai.models.list().catch((error: unknown) => error)).toMatchObject({ status: 401, code: 'lease_token_inactive' });
    expect(await renew(issued.lease_id, DEFAULT_TTL_S)).toMatchObject({ status: 409, body: { error: 'lease_inactive' } });
    expect(await openai.models.list().catch((error: unknown) => error)).toMatchObject({ status: 401, code: 'lease_token_inactive' });

    const renewals = await eventsOf('lease.renewed', issued.lease_id);
    expect(renewals.map((event) => event.details)).toEqual([
      expect.objectContaining({ expires_at: Date.parse(maxExpiresAt), renewable: false }),
      expect.objectContaining({ expires_at: Date.parse(maxExpiresAt), renewable: false }),
    ]);
    expect(await eventsOf('lease.denied', issued.lease_id)).toEqual([
      expect.objectContaining({ outcome: 'denied', reason: 'lease_inactive', details: { operation: 'renew', lease_id: issued.lease_id, backend: 'openai', role: 'chat' } }),
    ]);
  });

  it('renewing a revoked lease is refused, moves nothing, and the proxy keeps refusing the token', async () => {
    const issued = await lease('stripe', 'refunds:write');
    const stripe = stripeFor(issued.credential);
    await stripe.charges.retrieve('ch_1');
    await agent.expect(200, 'DELETE', `/v1/leases/${issued.lease_id}`);

    expect(await renew(issued.lease_id, MAX_TTL_S)).toMatchObject({ status: 409, body: { error: 'lease_inactive', message: expect.stringContaining('is revoked') } });
    expect(await record(issued.lease_id)).toMatchObject({ state: 'revoked', expires_at: issued.expires_at, renewable: false });
    const refused = await stripe.refunds.create({ charge: 'ch_1', amount: 100 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(refused).toMatchObject({ code: 'lease_token_inactive', message: expect.stringMatching(/^Tessera: Lease .* is revoked/) });

    expect(await eventsOf('lease.renewed', issued.lease_id)).toEqual([]);
    expect(await eventsOf('lease.denied', issued.lease_id)).toEqual([
      expect.objectContaining({ actor: agent.identityId, outcome: 'denied', reason: 'lease_inactive', details: expect.objectContaining({ operation: 'renew' }) }),
    ]);
  });

  it('a suspended identity (a suspected clone) gets identity_suspended from the proxy and cannot renew', async () => {
    const issued = (await suspect.lease('stripe', 'refunds:write')) as unknown as ProxiedLease;
    const stripe = stripeFor(issued.credential);
    await stripe.charges.retrieve('ch_1');
    // Two live sessions with one generation: a second copy of the agent holds its key.
    expect((await suspect.startSession({ generation: 7 })).reply.status).toBe(201);
    expect((await suspect.startSession({ generation: 7 })).reply).toMatchObject({ status: 403, body: { error: 'identity_suspended' } });

    const refused = await stripe.charges.retrieve('ch_1').catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'identity_suspended', message: expect.stringContaining('suspended') });
    expect(await suspect.send('POST', `/v1/leases/${issued.lease_id}/renew`, {})).toMatchObject({ status: 403, body: { error: 'identity_suspended' } });
  });

  it('a revoked identity can renew nothing, and its leases stay refused', async () => {
    const issued = (await doomed.lease('openai', 'chat')) as unknown as ProxiedLease;
    const openai = openaiFor(issued.credential);
    await openai.models.list();
    await proxy.admin.expect(200, 'POST', `/v1/admin/identities/${encodeURIComponent(doomed.address)}/revoke`, { reason: 'compromised' });

    expect(await doomed.send('POST', `/v1/leases/${issued.lease_id}/renew`, {})).toMatchObject({ status: 403, body: { error: 'identity_revoked' } });
    expect(await openai.models.list().catch((error: unknown) => error)).toMatchObject({ status: 401, message: expect.stringContaining('Tessera:') });
    expect(await eventsOf('lease.renewed', issued.lease_id)).toEqual([]);
  });
});
