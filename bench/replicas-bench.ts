/**
 * Replicas section: several `tessera serve` processes on one PostgreSQL database and one SoftHSM2
 * token (README "Scale-out"), driven round-robin as a load balancer would.
 *
 *  1. auth:   GET /v1/whoami, one fresh proof per request, at BENCH_REPLICAS_CONCURRENCY (24)
 *             connections, spread over 1, 2 and 3 replicas -> requests/s and the ratio to 1 replica.
 *  2. lease:  POST /v1/leases for a PostgreSQL login (default readonly role, on the same server) at
 *             10 connections, over 1, 2 and 3 replicas -> leases/s and the ratio to 1 replica.
 *             With each: the replicas' CPU time per request (from /proc), steadier than rates on a
 *             machine shared with other work, where more processes simply win a bigger share.
 *  3. revoke: with 3 replicas, BENCH_REPLICAS_REVOCATIONS (30) identities each cached as active on
 *             every replica; the identity is revoked through replica 0, then replicas 1 and 2 are
 *             asked (whoami, back to back) until they refuse it -> propagation p50/p99 from the revoke
 *             returning to the first refusal, request round trips included (the round trip of the
 *             same request just before is shown beside it). Target: p99 < 100 ms.
 *
 * Agents sign with in-memory Ed25519 keys registered straight into the database (as enrolled):
 * signing through the token in this process would cap the load generator before the brokers. All
 * processes share this machine's CPUs (2 here): expect the ratios to show that ceiling, not scale.
 *
 * The rounds run in the order 1 2 3 3 2 1 replicas, half a phase each, and are averaged per count.
 *
 * Knobs (bounded): BENCH_REPLICAS_S (6, per phase), BENCH_REPLICAS_CONCURRENCY (24), BENCH_REPLICAS_REVOCATIONS (30).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { BrokerClient } from '@tessera-broker/sdk';
import { loadConfig } from '../src/config/config.js';
import { createProof, PROOF_SCHEME } from '../src/identity/proof.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import type { Signer } from '../src/keys/key-store.js';
import { KeyStores } from '../src/keys/registry.js';
import { startPostgres, withClient } from '../test/support/postgres.js';
import {
  type BenchSection,
  Cleanup,
  cliEnvironment,
  envNumber,
  fmtInt,
  fmtMs,
  initBench,
  log,
  memorySigner,
  percentile,
  readCpuMs,
  type ResultRow,
  round,
  runLoad,
  type SectionResult,
  serveBench,
  verdict,
  registerActiveAgents,
} from './support.js';

const TARGET_PROPAGATION_P99_MS = 100;
const REPLICA_COUNTS = [1, 2, 3] as const;

interface Agent {
  readonly id: string;
  readonly address: string;
  readonly signer: Signer;
}

export const replicasSection: BenchSection = {
  name: 'replicas',
  description: 'authenticated requests/s and leases/s with 1, 2 and 3 replicas on one PostgreSQL; revocation propagation',
  run: runReplicas,
};

async function runReplicas(): Promise<SectionResult> {
  const cleanup = new Cleanup();
  try {
    return await measure(cleanup);
  } finally {
    await cleanup.run();
  }
}

async function measure(cleanup: Cleanup): Promise<SectionResult> {
  const phaseMs = envNumber('BENCH_REPLICAS_S', 6, 1, 120) * 1000;
  const concurrency = envNumber('BENCH_REPLICAS_CONCURRENCY', 24, 1, 256);
  const revocations = envNumber('BENCH_REPLICAS_REVOCATIONS', 30, 5, 1000);
  const failures: string[] = [];

  log('replicas: starting PostgreSQL');
  const cluster = await startPostgres();
  cleanup.add('stop PostgreSQL', () => cluster.destroy());
  await withClient(cluster.url, async (client) => {
    await client.query('CREATE DATABASE tessera');
    await client.query('CREATE DATABASE upstream');
  });
  const databaseUrl = withDatabase(cluster.url, 'tessera');

  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-bench-replicas-'));
  cleanup.add('remove data dir', () => rm(dataDir, { recursive: true, force: true }));
  const env = cliEnvironment({
    TESSERA_DATA_DIR: dataDir,
    TESSERA_DATABASE_URL: databaseUrl,
    TESSERA_MAX_CONNECTIONS_PER_ADDRESS: '0',
    TESSERA_LOG_LEVEL: 'warn',
  });
  initBench(env);
  log(`replicas: starting ${REPLICA_COUNTS.length} replicas`);
  // Replica 0 first: its address is the public URL every replica accepts proofs for.
  const first = await serveBench(cleanup, env);
  const replicaBrokers = [first, ...(await Promise.all(REPLICA_COUNTS.slice(1).map(() => serveBench(cleanup, { ...env, TESSERA_PUBLIC_URL: first.url }))))];
  const urls = replicaBrokers.map((replica) => replica.url);
  const replicaPids = replicaBrokers.map((replica) => replica.pid);

  // The admin signs through the token this process opens like the brokers do.
  const previousConf = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = join(dataDir, 'softhsm', 'softhsm2.conf');
  cleanup.add('restore SOFTHSM2_CONF', async () => {
    if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = previousConf;
  });
  const config = loadConfig({}, env);
  const keyStores = new KeyStores(config);
  cleanup.add('close key stores', () => keyStores.close());
  const adminSigner = await keyStores.signer(config.adminKeyUri!);
  const admin = await BrokerClient.connect(urls[0]!, adminSigner);
  await admin.request('POST', '/v1/admin/backends', { name: 'db', type: 'postgres', connection_url: withDatabase(cluster.url, 'upstream') });
  await admin.request('POST', '/v1/admin/grants', { subject: 'attr:bench=replicas', backend: 'db', role: 'readonly', max_ttl_seconds: 3600 });
  const agents = await registerAgents(databaseUrl, 'load', concurrency);

  const pools = urls.map((url) => new Pool(url, { connections: concurrency }));
  cleanup.add('close HTTP pools', () => Promise.all(pools.map((pool) => pool.close())).then(() => undefined));
  const send = async (replica: number, agent: Agent, method: string, path: string, body?: unknown): Promise<number> => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const proof = await createProof(agent.signer, agent.id, urls[0]!, { method, url: urls[0]! + path, body: payload }, Math.floor(Date.now() / 1000));
    const headers: Record<string, string> = { authorization: `${PROOF_SCHEME} ${proof}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await pools[replica]!.request({ method: method as 'GET', path, headers, body: body === undefined ? undefined : payload });
    await response.body.dump();
    return response.statusCode;
  };

  const replicaCpuMs = () => replicaPids.reduce((sum, pid) => sum + (readCpuMs(pid) ?? Number.NaN), 0);
  /**
   * Closed-loop load over the first `replicas` replicas, round-robin: requests/s, and the replicas'
   * CPU time per request (steadier than rates when other work shares the machine).
   */
  const load = async (replicas: number, loops: number, request: (replica: number, agent: Agent) => Promise<boolean>): Promise<{ rate: number; cpuMs: number }> => {
    let next = 0;
    const cpuBefore = replicaCpuMs();
    const result = await runLoad({
      concurrency: loops,
      durationMs: phaseMs / 2,
      maxRequests: 10_000_000,
      next: () => next++,
      send: (i) => request(i % replicas, agents[i % agents.length]!).catch(() => false),
    });
    if (result.failed > 0) failures.push(`${result.failed} of ${result.sent} requests failed with ${replicas} replica(s)`);
    return { rate: (result.ok / result.elapsedMs) * 1000, cpuMs: (replicaCpuMs() - cpuBefore) / Math.max(1, result.sent) };
  };

  // Rounds in the order 1 2 3 3 2 1 (half a phase each), so that load from elsewhere on the machine,
  // rising or falling, hits every replica count alike; a count's figures are its two rounds' mean.
  const auth = REPLICA_COUNTS.map(() => ({ rate: 0, cpuMs: 0 }));
  const lease = REPLICA_COUNTS.map(() => ({ rate: 0, cpuMs: 0 }));
  const add = (into: { rate: number; cpuMs: number }, round: { rate: number; cpuMs: number }) => {
    into.rate += round.rate / 2;
    into.cpuMs += round.cpuMs / 2;
  };
  for (const replicas of [...REPLICA_COUNTS, ...[...REPLICA_COUNTS].reverse()]) {
    const i = REPLICA_COUNTS.indexOf(replicas);
    log(`replicas: ${replicas} replica(s): authenticated requests`);
    add(auth[i]!, await load(replicas, concurrency, async (replica, agent) => (await send(replica, agent, 'GET', '/v1/whoami')) === 200));
    log(`replicas: ${replicas} replica(s): leases`);
    add(lease[i]!, await load(replicas, 10, async (replica, agent) => (await send(replica, agent, 'POST', '/v1/leases', { backend: 'db', role: 'readonly', ttl_seconds: 3600 })) === 201));
  }
  const authRates = auth.map((phase) => phase.rate);
  const leaseRates = lease.map((phase) => phase.rate);

  log(`replicas: revocation propagation over ${revocations} identities`);
  const victims = await registerAgents(databaseUrl, 'victim', revocations);
  const propagation: number[] = [];
  /** Round trips of the same request just before: how much of the propagation is the probe itself. */
  const roundTrips: number[] = [];
  for (const victim of victims) {
    for (let replica = 0; replica < REPLICA_COUNTS.length; replica++) {
      const sentAt = performance.now();
      if ((await send(replica, victim, 'GET', '/v1/whoami')) !== 200) failures.push(`${victim.address} was not accepted before its revocation`);
      if (replica > 0) roundTrips.push(performance.now() - sentAt);
    }
    await admin.request('POST', `/v1/admin/identities/${victim.address}/revoke`, { reason: 'bench' });
    const revokedAt = performance.now();
    await Promise.all(
      [1, 2].map(async (replica) => {
        for (let attempt = 0; ; attempt++) {
          const status = await send(replica, victim, 'GET', '/v1/whoami');
          if (status === 403) break;
          if (status !== 200 || attempt > 10_000) {
            failures.push(`replica ${replica} answered ${status} for a revoked identity`);
            break;
          }
        }
        propagation.push(performance.now() - revokedAt);
      }),
    );
  }
  const sorted = propagation.sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  const trips = roundTrips.sort((a, b) => a - b);

  const ratio = (rates: number[], i: number) => `${round(rates[i]! / rates[0]!, 2)}x`;
  const rows: ResultRow[] = [
    ...REPLICA_COUNTS.map((replicas, i) => ({ metric: `authenticated requests/s, ${replicas} replica(s)`, value: `${fmtInt(authRates[i]!)} (${ratio(authRates, i)})`, headline: replicas === 3 })),
    ...REPLICA_COUNTS.map((replicas, i) => ({ metric: `leases/s, ${replicas} replica(s)`, value: `${fmtInt(leaseRates[i]!)} (${ratio(leaseRates, i)})`, headline: replicas === 3 })),
    ...REPLICA_COUNTS.map((replicas, i) => ({ metric: `replica CPU per authenticated request, ${replicas} replica(s)`, value: fmtMs(auth[i]!.cpuMs) })),
    ...REPLICA_COUNTS.map((replicas, i) => ({ metric: `replica CPU per lease, ${replicas} replica(s)`, value: fmtMs(lease[i]!.cpuMs) })),
    { metric: 'one request round trip p50 / p99 (same replicas, just before)', value: `${fmtMs(percentile(trips, 50))} / ${fmtMs(percentile(trips, 99))}` },
    { metric: 'revocation propagation p50 (to the other replicas)', value: fmtMs(p50) },
    {
      metric: 'revocation propagation p99 (to the other replicas)',
      value: fmtMs(p99),
      target: `< ${TARGET_PROPAGATION_P99_MS} ms`,
      verdict: verdict(p99 < TARGET_PROPAGATION_P99_MS),
    },
  ];
  return {
    name: 'replicas',
    rows,
    failures,
    figures: {
      authRequestsPerSecond: Object.fromEntries(REPLICA_COUNTS.map((replicas, i) => [replicas, round(authRates[i]!, 0)])),
      authRatioVsOne: Object.fromEntries(REPLICA_COUNTS.map((replicas, i) => [replicas, round(authRates[i]! / authRates[0]!, 2)])),
      leasesPerSecond: Object.fromEntries(REPLICA_COUNTS.map((replicas, i) => [replicas, round(leaseRates[i]!, 1)])),
      leaseRatioVsOne: Object.fromEntries(REPLICA_COUNTS.map((replicas, i) => [replicas, round(leaseRates[i]! / leaseRates[0]!, 2)])),
      replicaCpuMsPerAuthRequest: Object.fromEntries(REPLICA_COUNTS.map((replicas, i) => [replicas, round(auth[i]!.cpuMs, 3)])),
      replicaCpuMsPerLease: Object.fromEntries(REPLICA_COUNTS.map((replicas, i) => [replicas, round(lease[i]!.cpuMs, 3)])),
      revocationPropagationMs: { p50: round(p50), p99: round(p99), samples: sorted.length },
      requestRoundTripMs: { p50: round(percentile(trips, 50)), p99: round(percentile(trips, 99)) },
    },
  };
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** `tessera serve` with its output discarded; resolves once it answers. */
/** Agents with in-memory keys, written into the database as provisioning + enrollment leave them. */
async function registerAgents(databaseUrl: string, prefix: string, count: number): Promise<Agent[]> {
  const agents: Agent[] = [];
  for (let i = 0; i < count; i++) {
    const signer = memorySigner();
    agents.push({ id: await keyThumbprint(signer.publicKey), address: `${prefix}-${i}@bench.local`, signer });
  }
  await registerActiveAgents(databaseUrl, agents, { bench: 'replicas' });
  return agents;
}
