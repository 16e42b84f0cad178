import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RETRY_CAP_MS } from '../../src/leases/backoff.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { adminAgent, enrolledAgent, tesseraRoles, type TestAgent } from '../support/lease-env.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

interface LeaseView {
  lease_id: string;
  state: string;
  last_error: string | null;
  revocation_reason: string | null;
}

describe('revocation while the upstream PostgreSQL is down', () => {
  let cluster: PostgresCluster;
  let env: TestBroker;
  let admin: TestAgent;

  beforeAll(async () => {
    [cluster, env] = await Promise.all([startPostgres(), startTestBroker()]);
    admin = await adminAgent(env);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'flaky', type: 'postgres', connection_url: cluster.url });
  });
  afterAll(async () => {
    await env?.close();
    await cluster?.destroy();
  });

  const leases = async () => (await admin.expect<{ leases: LeaseView[] }>(200, 'GET', '/v1/admin/leases?backend=flaky')).leases;

  it('keeps failed revocations visible as revocation-pending and completes them once it is back', async () => {
    const agent = await enrolledAgent(env, 'outage@acme.local');
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: 'flaky', role: 'readonly', max_ttl_seconds: 60 });
    for (let i = 0; i < 5; i++) await agent.lease('flaky', 'readonly', 1);
    await cluster.stop();

    const unavailable = await agent.send('POST', '/v1/leases', { backend: 'flaky', role: 'readonly' });
    expect(unavailable).toMatchObject({ status: 503, body: { error: 'backend_unavailable' } });
    // The five expire (by the broker's clock); the reaper's run fails to revoke them upstream.
    env.clock.advance(2_000);
    await env.scheduler.tick();
    const all = await leases();
    expect(all).toHaveLength(6);
    for (const lease of all) expect(lease).toMatchObject({ state: 'revocation-pending', last_error: expect.stringMatching(/revoke failed/) });
    const failures = (await admin.expect<{ events: { reason: string; details: { error: string } }[] }>(200, 'GET', '/v1/admin/audit?action=lease.revocation_failed&limit=1000')).events;
    expect(failures.length).toBeGreaterThanOrEqual(6);
    expect(failures.every((e) => e.reason === 'retryable')).toBe(true);
    expect(JSON.stringify(failures)).not.toContain(new URL(cluster.url).password);
    const denied = (await admin.expect<{ events: { reason: string }[] }>(200, 'GET', '/v1/admin/audit?action=lease.denied')).events;
    expect(denied.map((e) => e.reason)).toEqual(['backend_unavailable']);

    await cluster.start();
    env.clock.advance(RETRY_CAP_MS); // every backoff is due now
    try {
      await env.scheduler.tick();
      const states = (await leases()).map((l) => [l.state, l.revocation_reason, l.last_error]);
      expect(states.filter(([state]) => state === 'expired')).toHaveLength(5);
      expect(states.filter(([state]) => state === 'revoked')).toEqual([['revoked', 'mint_failed', null]]);
      expect(await tesseraRoles(cluster.url)).toEqual([]);
    } finally {
      env.clock.advance(-RETRY_CAP_MS - 2_000);
    }
  });
});
