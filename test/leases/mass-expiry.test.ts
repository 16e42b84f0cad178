/**
 * 2,000 leases expiring at one clock step: one reaper sweep revokes them all upstream while an
 * agent keeps leasing. Functional assertions only; the latency of those requests during the sweep
 * (target p99 < 1 s) is measured by the bench's mass-expiry section (bench/mass-expiry-bench.ts).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { adminAgent, enrolledAgent, issueInProcess, percentile, tesseraRoles, type TestAgent } from '../support/lease-env.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

const LEASES = 2_000;
const TTL_SECONDS = 600;

describe('2,000 leases expiring at the same moment', () => {
  let cluster: PostgresCluster;
  let env: TestBroker;
  let agent: TestAgent;

  beforeAll(async () => {
    [cluster, env] = await Promise.all([startPostgres(), startTestBroker()]);
    const admin = await adminAgent(env);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'bulk', type: 'postgres', connection_url: cluster.url });
    agent = await enrolledAgent(env, 'fleet@acme.local');
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: 'bulk', role: 'readonly', max_ttl_seconds: 3600 });
  });
  afterAll(async () => {
    await env?.close();
    await cluster?.destroy();
  });

  it('revokes them all upstream while the broker keeps issuing new leases', { timeout: 240_000 }, async () => {
    // The crowd is issued through the real issuer and backend, in-process (as the 20,000-lease test
    // does): HTTP and proofs are not what this test is about, and they cost minutes on busy cores.
    // The requests during the sweep below go over HTTP.
    const issueStart = Date.now();
    await issueInProcess(env, agent.address, LEASES, { backend: 'bulk', role: 'readonly', ttlMs: TTL_SECONDS * 1000 });
    const issueMs = Date.now() - issueStart;
    expect(await tesseraRoles(cluster.url)).toHaveLength(LEASES);

    // One clock step expires all of them at once; meanwhile an agent keeps asking for new leases.
    env.clock.advance((TTL_SECONDS + 1) * 1000);
    const sweepStart = Date.now();
    const latencies: number[] = [];
    const fresh = new Set<string>();
    // One reaper run, as its timer would start it, racing the agent's requests until it is done.
    let swept = false;
    const sweeping = env.scheduler.tick().finally(() => (swept = true));
    do {
      const started = performance.now();
      fresh.add((await agent.lease('bulk', 'readonly', 60)).credential.username);
      latencies.push(performance.now() - started);
    } while (!swept);
    await sweeping;
    const sweepMs = Date.now() - sweepStart;
    const left = (await tesseraRoles(cluster.url)).filter((role) => !fresh.has(role)).length;
    latencies.sort((a, b) => a - b);
    console.log(
      `mass expiry: issued ${LEASES} in ${issueMs} ms; swept in ~${sweepMs} ms; ${latencies.length} new leases during the sweep: ` +
        `p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms, max ${latencies.at(-1)!.toFixed(0)} ms`,
    );

    expect(left).toBe(0);
    expect(stateCounts(env.config.dataDir)).toEqual({ active: fresh.size, expired: LEASES });
  });
});

function stateCounts(dataDir: string): Record<string, number> {
  const db = new Database(join(dataDir, 'tessera.db'), { readonly: true });
  try {
    const rows = db.prepare('SELECT state, count(*) AS n FROM leases GROUP BY state').all() as { state: string; n: number }[];
    return Object.fromEntries(rows.map((row) => [row.state, row.n]));
  } finally {
    db.close();
  }
}
