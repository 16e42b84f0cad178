/**
 * Delegated leases of HTTP API backends through the real credential proxy (fake Stripe and OpenAI
 * upstreams, official clients): constraints only narrow along a chain, proxied calls name the
 * chain in their audit events, and revoking a link refuses the lease tokens below it.
 */
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrolledAgent, type TestAgent } from '../support/lease-env.js';
import { type ApiCredential, auditEvents, openaiFor, type StripeOpenAIEnv, startStripeOpenAIEnv, stripeFor } from '../proxy/support.js';

interface DelegatedLease {
  lease_id: string;
  delegation_id: string | null;
  credential: ApiCredential;
}

describe('delegated leases through the credential proxy', () => {
  let setup: StripeOpenAIEnv;
  let admin: TestAgent;
  let root: TestAgent;
  let sub: TestAgent;

  beforeAll(async () => {
    setup = await startStripeOpenAIEnv();
    admin = setup.admin;
    [root, sub] = await Promise.all([enrolledAgent(setup.env, 'payments@acme.local'), enrolledAgent(setup.env, 'refund-helper@acme.local')]);
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: root.address, backend: 'stripe', role: 'refunds:write', max_ttl_seconds: 600, constraints: { max_amount: '5000' } });
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: root.address, backend: 'openai', role: 'chat', max_ttl_seconds: 600, constraints: { models: 'gpt-4o-mini,gpt-4.1-nano' } });
  });
  afterAll(async () => {
    await setup?.close();
  });

  const delegate = (backend: string, role: string, constraints?: Record<string, string>) =>
    root.send<{ delegation_id: string; constraints: Record<string, string>; error?: string }>('POST', '/v1/delegations', {
      delegatee: sub.address,
      backend,
      role,
      ttl_seconds: 600,
      purpose: 'refund ticket 42',
      ...(constraints && { constraints }),
    });

  it('refuses a looser constraint and inherits the delegator\'s when none is given', async () => {
    expect(await delegate('stripe', 'refunds:write', { max_amount: '9000' })).toMatchObject({ status: 403, body: { error: 'delegation_scope_wider' } });
    expect(await delegate('openai', 'chat', { models: 'gpt-4o-mini,gpt-4.1' })).toMatchObject({ status: 403, body: { error: 'delegation_scope_wider' } });
    expect(await delegate('stripe', 'refunds:write', { max_amount: 'lots' })).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await delegate('stripe', 'billing:read')).toMatchObject({ status: 403, body: { error: 'no_grant' } });
    const inherited = await delegate('openai', 'chat');
    expect(inherited).toMatchObject({ status: 201, body: { constraints: { models: 'gpt-4o-mini,gpt-4.1-nano' } } });
    const narrower = await delegate('openai', 'chat', { models: 'gpt-4.1-nano' });
    expect(narrower).toMatchObject({ status: 201, body: { constraints: { models: 'gpt-4.1-nano' } } });
    const leased = await sub.expect<DelegatedLease>(201, 'POST', '/v1/leases', { backend: 'openai', role: 'chat', delegation: narrower.body.delegation_id });
    const wrongModel = await openaiFor(leased.credential).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).catch((error: unknown) => error);
    expect(wrongModel).toMatchObject({ status: 403 });
  });

  it('a delegated lease carries the tighter limit, names the chain in proxied-call events, and stops at once when its delegation is revoked', async () => {
    const created = await delegate('stripe', 'refunds:write', { max_amount: '1000' });
    expect(created.status).toBe(201);
    const { delegation_id } = created.body;
    const leased = await sub.expect<DelegatedLease>(201, 'POST', '/v1/leases', { backend: 'stripe', role: 'refunds:write' });
    expect(leased.delegation_id).toBe(delegation_id);
    const stripe = stripeFor(leased.credential);

    expect(await stripe.refunds.create({ charge: 'ch_1', amount: 1000 })).toMatchObject({ amount: 1000 });
    // Within the delegator's 5000, but not the delegation's 1000.
    const overLimit = await stripe.refunds.create({ charge: 'ch_1', amount: 1001 }).catch((error: unknown) => error);
    expect(overLimit).toMatchObject({ statusCode: 403, code: 'constraint_violation', message: expect.stringContaining('exceeds max_amount 1000') });

    const act = { sub: root.address, act: { sub: sub.address } };
    const requested = (await auditEvents(admin, 'proxy.request')).filter((event) => event.details.lease_id === leased.lease_id);
    expect(requested.map((event) => event.details.act)).toEqual([act]);
    const refusedEvents = (await auditEvents(admin, 'proxy.refused')).filter((event) => event.details.lease_id === leased.lease_id);
    expect(refusedEvents.map((event) => event.details.act)).toEqual([act]);

    expect(await root.expect(200, 'POST', `/v1/delegations/${delegation_id}/revoke`, { reason: 'ticket closed' })).toMatchObject({ delegations_revoked: 1, leases: { revoked: 1, pending: 0 } });
    const afterRevoke = await stripe.refunds.create({ charge: 'ch_1', amount: 10 }).catch((error: unknown) => error);
    expect(afterRevoke).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(afterRevoke).toMatchObject({ code: 'lease_token_inactive' });
  });
});
