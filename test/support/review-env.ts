/**
 * Fixtures for the review API and page: a broker seeded through its real APIs with the story a
 * security reviewer investigates (leases, denials, a revoked agent whose leases were revoked by
 * the cascade), a reviewer identity, and review sessions opened the way a browser opens them.
 */
import type { FastifyInstance } from 'fastify';
import { expect, inject } from 'vitest';
import { provisionAgent } from '../../provisioner/provision.js';
import { startTestBroker, type TestBroker } from './broker.js';
import { adminAgent, enrolledAgent, seedUpstream, TestAgent } from './lease-env.js';
import { createTestDatabase } from './postgres.js';

/** Attacker-influenced text the page must render as text. */
export const XSS_REASON = '<img src=x onerror=alert(1)> compromised';
export const REVOKED_ADDRESS = 'rogue-bot@acme.local';
export const ACTIVE_ADDRESS = 'billing-bot@acme.local';
export const REVIEWER_ADDRESS = 'auditor@acme.local';
export const BACKEND = 'orders-db';

export interface ReviewEnv {
  readonly env: TestBroker;
  readonly admin: TestAgent;
  readonly reviewer: TestAgent;
  readonly rogue: TestAgent;
  /** leases of the revoked agent, revoked by the cascade */
  readonly revokedLeaseIds: readonly string[];
  readonly activeLeaseId: string;
  close(): Promise<void>;
}

export async function startReviewEnv(): Promise<ReviewEnv> {
  const upstream = await createTestDatabase(inject('postgresUrl'));
  await seedUpstream(upstream.url);
  const env = await startTestBroker();
  const close = async () => {
    await env.close();
    await upstream.drop();
  };
  try {
    const admin = await adminAgent(env);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: BACKEND, type: 'postgres', connection_url: upstream.url });
    for (const subject of [REVOKED_ADDRESS, ACTIVE_ADDRESS]) {
      await admin.expect(201, 'POST', '/v1/admin/grants', { subject, backend: BACKEND, role: 'readonly', max_ttl_seconds: 600 });
    }
    const rogue = await enrolledAgent(env, REVOKED_ADDRESS, { team: 'payments', note: '"><script>alert(2)</script>' });
    const billing = await enrolledAgent(env, ACTIVE_ADDRESS, { team: 'billing' });
    const revokedLeaseIds = [(await rogue.lease(BACKEND, 'readonly')).lease_id, (await rogue.lease(BACKEND, 'readonly', 60)).lease_id];
    const activeLeaseId = (await billing.lease(BACKEND, 'readonly')).lease_id;
    // Denials: no grant for the role, a TTL over the grant's maximum, an admin route.
    expect(await rogue.send('POST', '/v1/leases', { backend: BACKEND, role: 'readwrite' })).toMatchObject({ status: 403 });
    expect(await rogue.send('POST', '/v1/leases', { backend: BACKEND, role: 'readonly', ttl_seconds: 6000 })).toMatchObject({ status: 400 });
    expect(await rogue.send('GET', '/v1/admin/identities')).toMatchObject({ status: 403 });
    const revoked = await admin.expect<{ leases: { revoked: number } }>(200, 'POST', `/v1/admin/identities/${REVOKED_ADDRESS}/revoke`, { reason: XSS_REASON });
    expect(revoked.leases.revoked).toBe(2);
    // ...and its next attempt is refused.
    expect(await rogue.send('POST', '/v1/leases', { backend: BACKEND, role: 'readonly' })).toMatchObject({ status: 403, body: { error: 'identity_revoked' } });
    const reviewer = await enrolledReviewer(env);
    await env.broker.auditCheckpoints.checkpoint();
    return { env, admin, reviewer, rogue, revokedLeaseIds, activeLeaseId, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Provisions a reviewer as `tessera provision --role reviewer` does, and enrolls it. */
export async function enrolledReviewer(env: TestBroker, address = REVIEWER_ADDRESS): Promise<TestAgent> {
  const provisioned = await provisionAgent(env.admin, env.keyStore, { address, attributes: {}, role: 'reviewer' });
  const reviewer = await TestAgent.create(env.url, await env.keyStores.signer(provisioned.key_uri), address, env.clock);
  await reviewer.expect(200, 'POST', '/v1/enroll', { ticket: provisioned.ticket });
  return reviewer;
}

/** A one-time login link, signed for by `who` (a reviewer or admin). */
export async function loginUrl(who: TestAgent): Promise<string> {
  return (await who.expect<{ login_url: string }>(201, 'POST', '/v1/review/sessions', {})).login_url;
}

/** Opens a login link as a browser would; returns the `name=token` cookie pair it sets. */
export async function openSession(who: TestAgent): Promise<string> {
  const response = await fetch(await loginUrl(who), { redirect: 'manual' });
  expect(response.status).toBe(303);
  expect(response.headers.get('location')).toBe('/ui');
  return response.headers.get('set-cookie')!.split(';')[0]!;
}

/** Every route of the app as [method, url], from fastify's route tree. */
export function routesOf(app: FastifyInstance): [string, string][] {
  const parents: string[] = [];
  const routes: [string, string][] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:│ {3}| {4})*)[├└]── (\S+)(?: \(([^)]+)\))?/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    const path = (parents[depth - 1] ?? '') + match[2]!;
    parents[depth] = path;
    for (const method of match[3]?.split(', ') ?? []) routes.push([method, path]);
  }
  return routes;
}
