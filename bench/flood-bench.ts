/**
 * Flood section: what a junk client costs everyone else.
 *
 *  1. broker: `tessera serve` (embedded defaults, pinned to CPU 0 when it can be) and one agent with
 *     an in-memory key registered in its database, so valid proofs cost this process no HSM call.
 *  2. quiet: BENCH_FLOOD_VALID_RATE (50) signed `GET /v1/whoami`/s (a fresh proof each) and as many
 *     `GET /healthz`/s, paced (open loop), for BENCH_FLOOD_S (5) s: their p50/p99 alone.
 *  3. flood: the same, while a junk client on another loopback address (127.0.0.2) sends
 *     BENCH_FLOOD_RATE (1000) requests/s: a quarter malformed proofs, a quarter well-formed proofs
 *     by an unknown key (both to /v1/whoami), half unknown lease tokens to the credential proxy.
 *     Broker CPU per junk request: the broker's CPU time over the flood phase minus over the quiet
 *     one, per junk request (load on other cores skews the latencies far more than this figure).
 *  4. audit cost: growth of the database + WAL and of audit_events over the flood, once the
 *     rejection window it fell in has been written (BENCH_FLOOD_SETTLE_S, 11 s after), per junk request.
 *
 * Knobs (bounded): BENCH_FLOOD_RATE (1000), BENCH_FLOOD_S (5), BENCH_FLOOD_VALID_RATE (50),
 * BENCH_FLOOD_SETTLE_S (11).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Pool } from 'undici';
import { createProof, PROOF_SCHEME } from '../src/identity/proof.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import {
  type BenchSection,
  Cleanup,
  cpuPlan,
  envNumber,
  fmtInt,
  fmtMs,
  type LatencySummary,
  log,
  memorySigner,
  readCpuMs,
  type ResultRow,
  round,
  runPaced,
  type SectionResult,
  startBenchBroker,
  summarizeLatencies,
  registerActiveAgents,
} from './support.js';

const JUNK_SOURCE = '127.0.0.2';

export const floodSection: BenchSection = {
  name: 'flood',
  description: 'valid-request and /healthz latency while a junk client floods the API and the proxy; audit bytes per junk request',
  run: runFloodBench,
};

interface Settings {
  readonly junkRate: number;
  readonly durationMs: number;
  readonly validRate: number;
  readonly settleMs: number;
}

interface ValidPhase {
  readonly whoami: LatencySummary & { readonly failed: number };
  readonly healthz: LatencySummary & { readonly failed: number };
}

/** Bytes of the SQLite database and its WAL. */
function storeBytes(dataDir: string): number {
  const size = (file: string) => {
    try {
      return statSync(join(dataDir, file)).size;
    } catch {
      return 0;
    }
  };
  return size('tessera.db') + size('tessera.db-wal');
}

function auditEventCount(dataDir: string): number {
  const database = new SqliteDatabase(join(dataDir, 'tessera.db'), { readonly: true });
  try {
    return (database.prepare('select count(*) as n from audit_events').get() as { n: number }).n;
  } finally {
    database.close();
  }
}

/** Paced valid traffic: signed whoami calls and /healthz, side by side, for `durationMs`. */
async function validTraffic(api: Pool, url: string, agent: { id: string; signer: ReturnType<typeof memorySigner> }, settings: Settings, errors: string[]): Promise<ValidPhase> {
  const paced = (path: string, authorize: boolean) =>
    runPaced({
      ratePerSecond: settings.validRate,
      concurrency: 16,
      durationMs: settings.durationMs,
      maxRequests: 100_000,
      next: () => true,
      send: async () => {
        try {
          const headers = authorize ? { authorization: `${PROOF_SCHEME} ${await createProof(agent.signer, agent.id, url, { method: 'GET', url: url + path, body: '' })}` } : undefined;
          const response = await api.request({ method: 'GET', path, headers });
          await response.body.dump();
          if (response.statusCode === 200) return true;
          if (errors.length < 5) errors.push(`GET ${path}: HTTP ${response.statusCode}`);
        } catch (error) {
          if (errors.length < 5) errors.push(`GET ${path}: ${(error as Error).message}`);
        }
        return false;
      },
    });
  const [whoami, healthz] = await Promise.all([paced('/v1/whoami', true), paced('/healthz', false)]);
  return {
    whoami: { ...summarizeLatencies(whoami.latenciesMs), failed: whoami.failed },
    healthz: { ...summarizeLatencies(healthz.latenciesMs), failed: healthz.failed },
  };
}

async function runFloodBench(): Promise<SectionResult> {
  const settings: Settings = {
    junkRate: envNumber('BENCH_FLOOD_RATE', 1000, 10, 5000),
    durationMs: envNumber('BENCH_FLOOD_S', 5, 1, 60) * 1000,
    validRate: envNumber('BENCH_FLOOD_VALID_RATE', 50, 1, 500),
    settleMs: envNumber('BENCH_FLOOD_SETTLE_S', 11, 0, 60) * 1000,
  };
  const cleanup = new Cleanup();
  const errors: string[] = [];
  try {
    const cpus = cpuPlan();
    log('flood: starting the broker (tessera init + serve)');
    const broker = await startBenchBroker(cleanup, { prefix: cpus.prefix('broker') });

    // One agent with an in-memory key, written into the broker's database as provisioning + enrollment would leave it.
    const signer = memorySigner();
    const agent = { id: await keyThumbprint(signer.publicKey), signer };
    await registerActiveAgents(`sqlite:${join(broker.dataDir, 'tessera.db')}`, [{ ...agent, address: 'flood-bench@bench.local' }]);

    const api = new Pool(broker.url, { connections: 16, pipelining: 1, keepAliveTimeout: 60_000 });
    const junkApi = new Pool(broker.url, { connections: 64, pipelining: 1, keepAliveTimeout: 60_000, localAddress: JUNK_SOURCE });
    const junkProxy = new Pool(broker.proxyUrl, { connections: 64, pipelining: 1, keepAliveTimeout: 60_000, localAddress: JUNK_SOURCE });
    cleanup.add('close pools', () => Promise.all([api.close(), junkApi.close(), junkProxy.close()]));

    // Junk: the same few requests over and over, as a flood would send them.
    const stranger = memorySigner();
    const unknownKeyProof = await createProof(stranger, await keyThumbprint(stranger.publicKey), broker.url, { method: 'GET', url: `${broker.url}/v1/whoami`, body: '' });
    const junk = [
      () => junkApi.request({ method: 'GET', path: '/v1/whoami', headers: { authorization: `${PROOF_SCHEME} not-a-jws` } }),
      () => junkProxy.request({ method: 'GET', path: '/v1/models', headers: { authorization: 'Bearer tsk_junk-token' } }),
      () => junkApi.request({ method: 'GET', path: '/v1/whoami', headers: { authorization: `${PROOF_SCHEME} ${unknownKeyProof}` } }),
      () => junkProxy.request({ method: 'GET', path: '/v1/charges/ch_1', headers: { authorization: 'Bearer sk_junk-token' } }),
    ];
    const junkStatuses: Record<string, number> = {};

    log(`flood: ${settings.validRate} whoami/s + ${settings.validRate} healthz/s, ${settings.durationMs / 1000} s quiet (after 1 s warm-up)`);
    await validTraffic(api, broker.url, agent, { ...settings, durationMs: 1_000 }, errors);
    const cpuQuietStart = readCpuMs(broker.pid) ?? Number.NaN;
    const quiet = await validTraffic(api, broker.url, agent, settings, errors);
    const cpuQuietMs = (readCpuMs(broker.pid) ?? Number.NaN) - cpuQuietStart;

    log(`flood: the same with ${settings.junkRate} junk requests/s from ${JUNK_SOURCE} for ${settings.durationMs / 1000} s`);
    const bytesBefore = storeBytes(broker.dataDir);
    const eventsBefore = auditEventCount(broker.dataDir);
    let turn = 0;
    const cpuFloodStart = readCpuMs(broker.pid) ?? Number.NaN;
    const [flooded, flood] = await Promise.all([
      validTraffic(api, broker.url, agent, settings, errors),
      runPaced({
        ratePerSecond: settings.junkRate,
        concurrency: 256,
        durationMs: settings.durationMs,
        maxRequests: 300_000,
        next: () => junk[turn++ % junk.length]!,
        send: async (request) => {
          try {
            const response = await request();
            await response.body.dump();
            junkStatuses[response.statusCode] = (junkStatuses[response.statusCode] ?? 0) + 1;
          } catch (error) {
            junkStatuses[(error as { code?: string }).code ?? 'error'] = (junkStatuses[(error as { code?: string }).code ?? 'error'] ?? 0) + 1;
          }
          return true;
        },
      }),
    ]);
    const cpuFloodMs = (readCpuMs(broker.pid) ?? Number.NaN) - cpuFloodStart;
    const cpuPerJunkMs = (cpuFloodMs - cpuQuietMs) / flood.sent;
    // Anonymous rejections are written once per window: wait for the flood's window to be written.
    log(`flood: waiting ${settings.settleMs / 1000} s for the audit writes of the flood to land`);
    await new Promise((resolve) => setTimeout(resolve, settings.settleMs));
    const auditBytes = storeBytes(broker.dataDir) - bytesBefore;
    const auditEvents = auditEventCount(broker.dataDir) - eventsBefore;

    const line = (phase: LatencySummary) => `${fmtMs(phase.p50)} / ${fmtMs(phase.p99)}`;
    const rows: ResultRow[] = [
      { metric: `junk: requests sent / achieved rate${cpus.pinned ? ' (broker pinned to CPU 0)' : ''}`, value: `${fmtInt(flood.sent)} / ${fmtInt((flood.sent / flood.elapsedMs) * 1000)}/s` },
      { metric: 'junk: answers by status', value: Object.entries(junkStatuses).map(([status, count]) => `${status}: ${fmtInt(count)}`).join(', ') },
      { metric: 'whoami p50 / p99: quiet', value: line(quiet.whoami) },
      { metric: 'whoami p50 / p99: under flood', value: line(flooded.whoami), headline: true },
      { metric: '/healthz p50 / p99: quiet', value: line(quiet.healthz) },
      { metric: '/healthz p50 / p99: under flood', value: line(flooded.healthz), headline: true },
      { metric: 'broker CPU per junk request', value: fmtMs(cpuPerJunkMs), headline: true },
      { metric: 'audit events written per junk request', value: round(auditEvents / flood.sent, 4).toString() },
      { metric: 'database + WAL growth per junk request', value: `${fmtInt(auditBytes / flood.sent)} bytes`, headline: true },
    ];
    if (quiet.whoami.failed + quiet.healthz.failed + flooded.whoami.failed + flooded.healthz.failed > 0) {
      errors.unshift(`valid requests failed: quiet ${quiet.whoami.failed + quiet.healthz.failed}, under flood ${flooded.whoami.failed + flooded.healthz.failed}`);
    }
    return {
      name: 'flood',
      rows,
      figures: { settings, quiet, flooded, junk: { sent: flood.sent, elapsedMs: flood.elapsedMs, statuses: junkStatuses }, cpu: { quietMs: cpuQuietMs, floodMs: cpuFloodMs, perJunkMs: cpuPerJunkMs }, auditBytes, auditEvents },
      failures: errors,
    };
  } finally {
    await cleanup.run();
  }
}
