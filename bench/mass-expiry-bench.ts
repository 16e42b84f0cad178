/**
 * Mass-expiry section: how the broker answers new lease requests while its reaper revokes a crowd
 * of leases that all expired at the same moment (moved here from test/leases/mass-expiry.test.ts,
 * which keeps the functional assertions: a timing target does not belong in a test).
 *
 * In-process broker (SQLite, SoftHSM2 token) with a movable clock and a scheduler run by hand, on a
 * fresh PostgreSQL cluster: BENCH_MASS_EXPIRY_LEASES (2000) leases are issued over HTTP, the clock
 * steps past their expiry, one reaper sweep starts, and an agent keeps issuing new leases one after
 * another until the sweep is done. Target: p99 of those requests under 1 s.
 *
 * Knobs (bounded): BENCH_MASS_EXPIRY_LEASES (2000), BENCH_MASS_EXPIRY_CONCURRENCY (16).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { provisionAgent } from '../provisioner/provision.js';
import { createBroker } from '../src/broker.js';
import { BrokerClient } from '@tessera-broker/sdk';
import { loadConfig } from '../src/config/config.js';
import { createProof, PROOF_SCHEME } from '../src/identity/proof.js';
import { initialize } from '../src/init.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import { KeyStores } from '../src/keys/registry.js';
import { ManualScheduler, TestClock } from '../test/support/clock.js';
import { listenInProcess } from '../test/support/listen.js';
import { onFreePorts } from '../test/support/ports.js';
import { startPostgres } from '../test/support/postgres.js';
import { createTestToken } from '../test/support/softhsm.js';
import { type BenchSection, Cleanup, envNumber, fmtInt, fmtMs, log, round, type SectionResult, summarizeLatencies, verdict } from './support.js';

const TTL_SECONDS = 600;
const P99_TARGET_MS = 1_000;

export const massExpirySection: BenchSection = {
  name: 'mass-expiry',
  description: 'new leases while the reaper revokes a crowd of leases that expired at once',
  async run(): Promise<SectionResult> {
    const leases = envNumber('BENCH_MASS_EXPIRY_LEASES', 2_000, 10, 20_000);
    const concurrency = envNumber('BENCH_MASS_EXPIRY_CONCURRENCY', 16, 1, 64);
    const cleanup = new Cleanup();
    const failures: string[] = [];
    try {
      const cluster = await startPostgres();
      cleanup.add('postgres', () => cluster.destroy());
      const dataDir = await mkdtemp(join(tmpdir(), 'tessera-bench-expiry-'));
      cleanup.add('data dir', () => rm(dataDir, { recursive: true, force: true }));
      const token = await createTestToken();
      cleanup.add('token', () => token.cleanup());
      const env = {
        TESSERA_DATA_DIR: dataDir,
        TESSERA_PKCS11_MODULE: token.modulePath,
        TESSERA_PKCS11_TOKEN: token.tokenLabel,
        TESSERA_PKCS11_PIN: token.pin,
        SOFTHSM2_CONF: token.confPath,
        TESSERA_LOG_LEVEL: 'silent',
      };
      await initialize(loadConfig({}, env));
      const clock = new TestClock();
      const scheduler = new ManualScheduler();
      const { config, broker } = await onFreePorts(2, async ([port, proxyPort]) => {
        const config = loadConfig({}, { ...env, TESSERA_LISTEN: `127.0.0.1:${port}`, TESSERA_PROXY_LISTEN: `127.0.0.1:${proxyPort}` });
        return { config, broker: await listenInProcess(port!, createBroker(config, { clock, scheduler, walCheckpointThread: false })) };
      });
      cleanup.add('broker', () => broker.close());
      const keyStores = new KeyStores(config);
      cleanup.add('key stores', () => keyStores.close());
      const admin = await BrokerClient.connect(config.publicUrl, await keyStores.signer(config.adminKeyUri!));

      // The agent signs proofs by the broker's (moved) clock.
      const address = 'fleet@acme.local';
      const provisioned = await provisionAgent(admin, await keyStores.get('pkcs11'), { address, attributes: {} });
      const signer = await keyStores.signer(provisioned.key_uri);
      const identityId = await keyThumbprint(signer.publicKey);
      const send = async (method: string, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
        const payload = JSON.stringify(body);
        const proof = await createProof(signer, identityId, config.publicUrl, { method, url: config.publicUrl + path, body: payload }, Math.floor(clock.now() / 1000));
        const response = await fetch(config.publicUrl + path, { method, headers: { authorization: `${PROOF_SCHEME} ${proof}`, 'content-type': 'application/json' }, body: payload });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const lease = async (ttl: number) => {
        const reply = await send('POST', '/v1/leases', { backend: 'bulk', role: 'readonly', ttl_seconds: ttl });
        if (reply.status !== 201) throw new Error(`POST /v1/leases answered ${reply.status}: ${JSON.stringify(reply.body)}`);
      };
      const enrolled = await send('POST', '/v1/enroll', { ticket: provisioned.ticket });
      if (enrolled.status !== 200) throw new Error(`enroll answered ${enrolled.status}`);
      await admin.request('POST', '/v1/admin/backends', { name: 'bulk', type: 'postgres', connection_url: cluster.url });
      await admin.request('POST', '/v1/admin/grants', { subject: address, backend: 'bulk', role: 'readonly', max_ttl_seconds: 3600 });

      log(`mass-expiry: issuing ${leases} leases (${concurrency} at a time)`);
      const issueStart = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next++ < leases) await lease(TTL_SECONDS);
        }),
      );
      const issueMs = performance.now() - issueStart;

      clock.advance((TTL_SECONDS + 1) * 1000);
      const sweepStart = performance.now();
      const samples: number[] = [];
      let swept = false;
      const sweeping = scheduler.tick().finally(() => (swept = true));
      do {
        const started = performance.now();
        await lease(60);
        samples.push(performance.now() - started);
      } while (!swept);
      await sweeping;
      const sweepMs = performance.now() - sweepStart;
      const latency = summarizeLatencies(Float64Array.from(samples));
      clock.advance(-(TTL_SECONDS + 1) * 1000); // the admin client signs by real time
      const expired = (await admin.request<{ leases: unknown[] }>('GET', '/v1/admin/leases?state=expired')).leases.length;
      if (expired !== leases) failures.push(`${expired} of ${leases} leases reached state expired after the sweep`);

      return {
        name: 'mass-expiry',
        rows: [
          { metric: `issue ${fmtInt(leases)} leases`, value: `${fmtInt(issueMs)} ms` },
          { metric: 'sweep of the expired crowd', value: `${fmtInt(sweepMs)} ms` },
          { metric: `new leases during the sweep (${latency.count}) p50`, value: fmtMs(latency.p50) },
          { metric: 'new leases during the sweep p99', value: fmtMs(latency.p99), target: `< ${fmtInt(P99_TARGET_MS)} ms`, verdict: verdict(latency.p99 < P99_TARGET_MS), headline: true },
          { metric: 'new leases during the sweep max', value: fmtMs(latency.max) },
        ],
        figures: { leases, concurrency, issueMs: round(issueMs), sweepMs: round(sweepMs), duringSweep: { ...latency } },
        failures,
      };
    } finally {
      await cleanup.run();
    }
  },
};
