/**
 * Delegation section (issue 14): what a chain costs.
 *
 *  1. A lease through a depth-3 chain (root -> a -> b -> leaf, each link narrowing `max_amount`)
 *     against a direct lease under the root's own grant, side by side: the two kinds alternate,
 *     one request at a time, on a `stripe` backend (a proxied lease mints no upstream credential,
 *     so the broker's own work is all there is to compare). Target: mean delegated / mean direct
 *     <= 1.2. The delegated lease names its delegation; leases where the broker has to find the
 *     one that applies are measured too.
 *  2. Revoking a root delegation with BENCH_DELEGATION_LEASES (1,000) PostgreSQL leases below it
 *     (on a fresh cluster, CREATEROLE admin): the time of the one request that revokes the chain
 *     and drops every role upstream.
 *
 * In-process broker (SQLite, SoftHSM2 token) over HTTP with proofs signed by the agents' keys.
 * Knobs (bounded): BENCH_DELEGATION_ROUNDS (300), BENCH_DELEGATION_LEASES (1000).
 */
import { createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { provisionAgent } from '../provisioner/provision.js';
import { createBroker } from '../src/broker.js';
import { BrokerClient, keyThumbprint } from '@tessera-broker/sdk';
import { loadConfig } from '../src/config/config.js';
import { createProof, PROOF_SCHEME } from '../src/identity/proof.js';
import { initialize } from '../src/init.js';
import { KeyStores } from '../src/keys/registry.js';
import { ManualScheduler, TestClock } from '../test/support/clock.js';
import { freePort } from '../test/support/ports.js';
import { createAdminRole, startPostgres, withClient } from '../test/support/postgres.js';
import { createTestToken } from '../test/support/softhsm.js';
import { type BenchSection, Cleanup, envNumber, fmtInt, fmtMs, type LatencySummary, log, round, type SectionResult, summarizeLatencies, verdict } from './support.js';

const RATIO_TARGET = 1.2;

type Reply = { status: number; body: Record<string, unknown> };

export const delegationSection: BenchSection = {
  name: 'delegation',
  description: 'a lease through a depth-3 delegation chain vs a direct lease; revoking a root delegation with 1,000 leases below it',
  async run(): Promise<SectionResult> {
    const rounds = envNumber('BENCH_DELEGATION_ROUNDS', 300, 10, 10_000);
    const leaseCount = envNumber('BENCH_DELEGATION_LEASES', 1_000, 10, 20_000);
    const cleanup = new Cleanup();
    const failures: string[] = [];
    try {
      const cluster = await startPostgres();
      cleanup.add('postgres', () => cluster.destroy());
      // A stand-in Stripe that answers the backend check; proxied leases never call it when issued.
      const upstream = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
      await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
      cleanup.add('fake stripe', () => new Promise<void>((resolve) => upstream.close(() => resolve())));
      const dataDir = await mkdtemp(join(tmpdir(), 'tessera-bench-delegation-'));
      cleanup.add('data dir', () => rm(dataDir, { recursive: true, force: true }));
      const token = await createTestToken();
      cleanup.add('token', () => token.cleanup());
      const port = await freePort();
      const env = {
        TESSERA_DATA_DIR: dataDir,
        TESSERA_PKCS11_MODULE: token.modulePath,
        TESSERA_PKCS11_TOKEN: token.tokenLabel,
        TESSERA_PKCS11_PIN: token.pin,
        SOFTHSM2_CONF: token.confPath,
        TESSERA_LOG_LEVEL: 'silent',
        TESSERA_LISTEN: `127.0.0.1:${port}`,
        TESSERA_PROXY_LISTEN: `127.0.0.1:${await freePort()}`,
      };
      await initialize(loadConfig({}, env));
      const config = loadConfig({}, env);
      const broker = await createBroker(config, { clock: new TestClock(), scheduler: new ManualScheduler(), walCheckpointThread: false });
      cleanup.add('broker', () => broker.close());
      await broker.app.listen({ host: '127.0.0.1', port });
      const keyStores = new KeyStores(config);
      cleanup.add('key stores', () => keyStores.close());
      const admin = await BrokerClient.connect(config.publicUrl, await keyStores.signer(config.adminKeyUri!));

      const agent = async (address: string) => {
        const provisioned = await provisionAgent(admin, await keyStores.get('pkcs11'), { address, attributes: {} });
        const signer = await keyStores.signer(provisioned.key_uri);
        const identityId = await keyThumbprint(signer.publicKey);
        const send = async (method: string, path: string, body: unknown): Promise<Reply> => {
          const payload = JSON.stringify(body);
          const proof = await createProof(signer, identityId, config.publicUrl, { method, url: config.publicUrl + path, body: payload }, Math.floor(Date.now() / 1000));
          const response = await fetch(config.publicUrl + path, { method, headers: { authorization: `${PROOF_SCHEME} ${proof}`, 'content-type': 'application/json' }, body: payload });
          return { status: response.status, body: (await response.json()) as Record<string, unknown> };
        };
        const must = async (status: number, method: string, path: string, body: unknown) => {
          const reply = await send(method, path, body);
          if (reply.status !== status) throw new Error(`${method} ${path} answered ${reply.status}: ${JSON.stringify(reply.body)}`);
          return reply.body;
        };
        await must(200, 'POST', '/v1/enroll', { ticket: provisioned.ticket });
        return { address, send, must };
      };
      type Agent = Awaited<ReturnType<typeof agent>>;
      const [root, a, b, leaf] = [await agent('root@acme.local'), await agent('a@acme.local'), await agent('b@acme.local'), await agent('leaf@acme.local')];
      const delegateChain = async (backend: string, role: string, amounts: readonly (string | undefined)[]) => {
        const ids: string[] = [];
        const links: [Agent, Agent][] = [[root, a], [a, b], [b, leaf]];
        for (const [index, [from, to]] of links.entries()) {
          const body = await from.must(201, 'POST', '/v1/delegations', {
            delegatee: to.address,
            backend,
            role,
            ttl_seconds: 7200 - index * 60,
            purpose: 'bench',
            ...(amounts[index] && { constraints: { max_amount: amounts[index] } }),
          });
          ids.push(body.delegation_id as string);
        }
        return ids;
      };

      // 1. Lease cost: direct vs depth 3.
      await admin.request('POST', '/v1/admin/backends', { name: 'payments', type: 'stripe', secret_key: 'sk_test_bench', upstream_url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` });
      await admin.request('POST', '/v1/admin/grants', { subject: root.address, backend: 'payments', role: 'refunds:write', max_ttl_seconds: 3600, constraints: { max_amount: '5000' } });
      const chain = await delegateChain('payments', 'refunds:write', ['4000', '3000', '2000']);
      const leafDelegation = chain[2]!;
      const request = { backend: 'payments', role: 'refunds:write', ttl_seconds: 600 };
      const kinds = {
        direct: () => root.must(201, 'POST', '/v1/leases', request),
        delegated: () => leaf.must(201, 'POST', '/v1/leases', { ...request, delegation: leafDelegation }),
        automatic: () => leaf.must(201, 'POST', '/v1/leases', request),
      };
      const samples = { direct: [] as number[], delegated: [] as number[], automatic: [] as number[] };
      // Warm-up: compiled queries, connections, JIT.
      for (let i = 0; i < 20; i += 1) for (const issue of Object.values(kinds)) await issue();
      log(`delegation: ${rounds} rounds of direct / depth-3 / depth-3 automatic leases, alternating`);
      for (let i = 0; i < rounds; i += 1) {
        for (const [kind, issue] of Object.entries(kinds) as [keyof typeof kinds, () => Promise<unknown>][]) {
          const started = performance.now();
          await issue();
          samples[kind].push(performance.now() - started);
        }
      }
      const summary = {
        direct: summarizeLatencies(Float64Array.from(samples.direct)),
        delegated: summarizeLatencies(Float64Array.from(samples.delegated)),
        automatic: summarizeLatencies(Float64Array.from(samples.automatic)),
      };
      const ratio = summary.delegated.mean / summary.direct.mean;
      const automaticRatio = summary.automatic.mean / summary.direct.mean;

      // 2. Revoking a root delegation with many PostgreSQL leases below it.
      const adminRole = await createAdminRole(cluster.url);
      await admin.request('POST', '/v1/admin/backends', { name: 'ledger', type: 'postgres', connection_url: adminRole.url });
      await admin.request('POST', '/v1/admin/grants', { subject: root.address, backend: 'ledger', role: 'readonly', max_ttl_seconds: 3600 });
      const [rootLink] = await delegateChain('ledger', 'readonly', []);
      const leaseRequest = { backend: 'ledger', role: 'readonly', ttl_seconds: 3600 };
      log(`delegation: issuing ${leaseCount} PostgreSQL leases through the chain (the leaf and its delegators)`);
      const holders = [a, b, leaf];
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < leaseCount) {
            const holder = holders[next++ % holders.length]!;
            await holder.must(201, 'POST', '/v1/leases', leaseRequest);
          }
        }),
      );
      const revokeStart = performance.now();
      const revoked = await root.must(200, 'POST', `/v1/delegations/${rootLink}/revoke`, { reason: 'bench' });
      const revokeMs = performance.now() - revokeStart;
      const counts = revoked.leases as { revoked: number; pending: number };
      if (counts.revoked !== leaseCount || counts.pending !== 0 || revoked.delegations_revoked !== 3) {
        failures.push(`the revocation reported ${JSON.stringify(revoked)}; expected ${leaseCount} leases and 3 delegations revoked`);
      }
      const roles = await leasedRoleCount(cluster.url);
      if (roles !== 0) failures.push(`${roles} leased roles still exist upstream after the revocation`);

      return {
        name: 'delegation',
        rows: [
          { metric: `direct lease (${rounds}) mean / p50 / p99`, value: `${fmtMs(summary.direct.mean)} / ${fmtMs(summary.direct.p50)} / ${fmtMs(summary.direct.p99)}` },
          { metric: 'depth-3 delegated lease mean / p50 / p99', value: `${fmtMs(summary.delegated.mean)} / ${fmtMs(summary.delegated.p50)} / ${fmtMs(summary.delegated.p99)}` },
          { metric: 'depth-3 delegated / direct (mean)', value: `${ratio.toFixed(2)}x`, target: `<= ${RATIO_TARGET}x`, verdict: verdict(ratio <= RATIO_TARGET), headline: true },
          { metric: 'depth-3, delegation found by the broker, mean', value: `${fmtMs(summary.automatic.mean)} (${automaticRatio.toFixed(2)}x direct)` },
          { metric: `revoke a root delegation with ${fmtInt(leaseCount)} PostgreSQL leases below it`, value: `${fmtInt(revokeMs)} ms`, headline: true },
        ],
        figures: {
          rounds,
          direct: roundAll(summary.direct),
          delegated: roundAll(summary.delegated),
          automatic: roundAll(summary.automatic),
          ratio: round(ratio, 3),
          automaticRatio: round(automaticRatio, 3),
          revoke: { leases: leaseCount, ms: round(revokeMs), ...counts },
        },
        failures,
      };
    } finally {
      await cleanup.run();
    }
  },
};

const roundAll = (summary: LatencySummary) => Object.fromEntries(Object.entries(summary).map(([key, value]) => [key, round(value)]));

/** Leased login roles left in the cluster (`tessera_<role>_<16 hex>`). */
async function leasedRoleCount(url: string): Promise<number> {
  return withClient(url, async (client) => (await client.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_roles WHERE rolname ~ '^tessera_.*_[0-9a-f]{16}$'")).rows[0]!.n);
}
