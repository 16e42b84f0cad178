/**
 * Proxy section: what the credential proxy costs next to calling the same upstream directly.
 *
 *  1. upstream: its own process (bench/proxy-upstream.ts), a Stripe-like JSON route and an
 *     OpenAI-like SSE stream, each answering after BENCH_PROXY_UPSTREAM_DELAY_MS (a remote API's
 *     service time; 0 measures the bare hop).
 *  2. broker: `tessera serve` (embedded defaults) with `stripe` and `openai` backends on that
 *     upstream, set up through the CLI; the admin identity leases one token of each.
 *  3. throughput and latency: BENCH_PROXY_CONCURRENCY closed loops of `GET /v1/charges/ch_bench`
 *     over one keep-alive undici pool, direct (real secret) then through the proxy (lease token),
 *     each after a warm-up; every proxied call is looked up, scope-checked and audited (two events).
 *  4. streaming: sequential `POST /v1/chat/completions` (stream) calls, time to the first body chunk,
 *     direct vs proxied (median).
 *
 * Knobs (bounded): BENCH_PROXY_S (5), BENCH_PROXY_CONCURRENCY (16), BENCH_PROXY_UPSTREAM_DELAY_MS (10),
 * BENCH_PROXY_STREAMS (40).
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import type { ApiCredential, LeaseResponse } from '@tessera-broker/sdk/wire';
import {
  type BenchSection,
  Cleanup,
  cpuPlan,
  envNumber,
  fmtInt,
  fmtMs,
  type LatencySummary,
  log,
  readCpuMs,
  type ResultRow,
  round,
  runLoad,
  type SectionResult,
  startBenchBroker,
  startListeningScript,
  summarizeLatencies,
  verdict,
} from './support.js';

const TARGET_THROUGHPUT_RATIO = 0.8;
const TARGET_P50_RATIO = 1.2;
const TARGET_TTFC_DELTA_MS = 5;

const SECRET = 'sk_test_bench_real_secret';
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const UPSTREAM = fileURLToPath(new URL('./proxy-upstream.js', import.meta.url));
const CHARGE_PATH = '/v1/charges/ch_bench';
const CHAT_BODY = JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] });

export const proxySection: BenchSection = {
  name: 'proxy',
  description: 'requests through the credential proxy vs directly to the same local upstream',
  run: runProxyBench,
};

interface Settings {
  readonly durationMs: number;
  readonly concurrency: number;
  readonly delayMs: number;
  readonly streams: number;
}

interface LoadPhase {
  readonly perSecond: number;
  readonly failed: number;
  readonly latencyMs: LatencySummary;
}

function startUpstream(cleanup: Cleanup, delayMs: number, prefix: string[]): Promise<{ url: string; child: ChildProcess }> {
  return startListeningScript(cleanup, 'upstream', UPSTREAM, { env: { BENCH_UPSTREAM_SECRET: SECRET, BENCH_UPSTREAM_DELAY_MS: String(delayMs) }, prefix });
}

/** Runs the CLI against the bench broker; returns stdout, throws with stderr on failure. */
function cli(env: NodeJS.ProcessEnv, args: string[]): string {
  const result = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`tessera ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
  return result.stdout;
}

/** Backends, grants and one lease per backend for an enrolled agent (admins never lease), all through the CLI. */
function leaseTokens(env: NodeJS.ProcessEnv, dataDir: string, upstreamUrl: string): { stripe: ApiCredential; openai: ApiCredential } {
  const secretFile = join(dataDir, 'bench-upstream.secret');
  writeFileSync(secretFile, SECRET, { mode: 0o600 });
  const agent = JSON.parse(cli(env, ['provision', 'proxy-bench@bench.local', '--json'])) as { address: string; key_uri: string; ticket: string };
  cli(env, ['enroll', '--ticket', agent.ticket, '--key', agent.key_uri]);
  const lease = (backend: string, scope: string) =>
    (JSON.parse(cli(env, ['lease', backend, '--role', scope, '--ttl', '1h', '--key', agent.key_uri, '--json'])) as LeaseResponse<ApiCredential>).credential;
  cli(env, ['backend', 'add', 'stripe', 'bench-stripe', '--secret-key-file', secretFile, '--upstream-url', upstreamUrl]);
  cli(env, ['backend', 'add', 'openai', 'bench-openai', '--api-key-file', secretFile, '--upstream-url', upstreamUrl]);
  cli(env, ['grant', agent.address, 'bench-stripe', '--scope', 'refunds:write', '--max-ttl', '24h']);
  cli(env, ['grant', agent.address, 'bench-openai', '--scope', 'chat', '--constraint', 'models=gpt-4o-mini', '--max-ttl', '24h']);
  return { stripe: lease('bench-stripe', 'refunds:write'), openai: lease('bench-openai', 'chat') };
}

async function load(pool: Pool, apiKey: string, settings: Settings, durationMs: number, errors: string[]): Promise<LoadPhase> {
  const headers = { authorization: `Bearer ${apiKey}` };
  const result = await runLoad({
    concurrency: settings.concurrency,
    durationMs,
    maxRequests: 5_000_000,
    next: () => true,
    send: async () => {
      try {
        const response = await pool.request({ method: 'GET', path: CHARGE_PATH, headers });
        await response.body.dump();
        if (response.statusCode === 200) return true;
        if (errors.length < 5) errors.push(`GET ${CHARGE_PATH}: HTTP ${response.statusCode}`);
      } catch (error) {
        if (errors.length < 5) errors.push((error as Error).message);
      }
      return false;
    },
  });
  return { perSecond: (result.ok / result.elapsedMs) * 1000, failed: result.failed, latencyMs: summarizeLatencies(result.latenciesMs) };
}

/** Median time from sending a streamed chat request to its first body chunk. */
async function timeToFirstChunk(pool: Pool, apiKey: string, count: number, errors: string[]): Promise<number> {
  const samples = new Float64Array(count);
  for (let index = 0; index < count; index += 1) {
    const started = performance.now();
    const response = await pool.request({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: CHAT_BODY,
    });
    if (response.statusCode !== 200 && errors.length < 5) errors.push(`stream: HTTP ${response.statusCode}`);
    for await (const _chunk of response.body) {
      samples[index] = performance.now() - started;
      break;
    }
    await response.body.dump();
  }
  return summarizeLatencies(samples).p50;
}

async function runProxyBench(): Promise<SectionResult> {
  const settings: Settings = {
    durationMs: envNumber('BENCH_PROXY_S', 5, 1, 120) * 1000,
    concurrency: envNumber('BENCH_PROXY_CONCURRENCY', 16, 1, 256),
    delayMs: envNumber('BENCH_PROXY_UPSTREAM_DELAY_MS', 10, 0, 1000),
    streams: envNumber('BENCH_PROXY_STREAMS', 40, 5, 1000),
  };
  const cleanup = new Cleanup();
  const errors: string[] = [];
  try {
    const cpus = cpuPlan();
    const upstream = await startUpstream(cleanup, settings.delayMs, cpus.prefix('load'));
    log(`proxy: starting the broker (tessera init + serve), upstream delay ${settings.delayMs} ms`);
    const broker = await startBenchBroker(cleanup, { prefix: cpus.prefix('broker') });
    const tokens = leaseTokens(broker.env, broker.dataDir, upstream.url);

    const direct = new Pool(upstream.url, { connections: settings.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
    const proxied = new Pool(tokens.stripe.base_url, { connections: settings.concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
    cleanup.add('close pools', () => Promise.all([direct.close(), proxied.close()]));

    log(`proxy: ${settings.concurrency} loops, ${settings.durationMs / 1000} s direct then ${settings.durationMs / 1000} s proxied (1 s warm-up each)`);
    await load(direct, SECRET, settings, 1_000, errors);
    const directLoad = await load(direct, SECRET, settings, settings.durationMs, errors);
    await load(proxied, tokens.stripe.api_key, settings, 1_000, errors);
    const cpuBefore = readCpuMs(broker.pid) ?? Number.NaN;
    const proxiedLoad = await load(proxied, tokens.stripe.api_key, settings, settings.durationMs, errors);
    const cpuPerRequestMs = ((readCpuMs(broker.pid) ?? Number.NaN) - cpuBefore) / ((proxiedLoad.perSecond * settings.durationMs) / 1000);

    log(`proxy: ${settings.streams} streamed chat completions each way`);
    const directTtfc = await timeToFirstChunk(direct, SECRET, settings.streams, errors);
    const proxiedTtfc = await timeToFirstChunk(proxied, tokens.openai.api_key, settings.streams, errors);

    const throughputRatio = proxiedLoad.perSecond / directLoad.perSecond;
    const p50Ratio = proxiedLoad.latencyMs.p50 / directLoad.latencyMs.p50;
    const p99Ratio = proxiedLoad.latencyMs.p99 / directLoad.latencyMs.p99;
    const ttfcDelta = proxiedTtfc - directTtfc;
    const rows: ResultRow[] = [
      { metric: `upstream service time / concurrency${cpus.pinned ? ' (broker pinned to CPU 0)' : ''}`, value: `${settings.delayMs} ms / ${settings.concurrency}` },
      { metric: 'direct: requests/s', value: fmtInt(directLoad.perSecond) },
      { metric: 'proxied: requests/s', value: fmtInt(proxiedLoad.perSecond) },
      { metric: 'throughput proxied/direct', value: round(throughputRatio).toFixed(2), target: `>= ${TARGET_THROUGHPUT_RATIO}`, verdict: verdict(throughputRatio >= TARGET_THROUGHPUT_RATIO), headline: true },
      { metric: 'direct: p50 / p99', value: `${fmtMs(directLoad.latencyMs.p50)} / ${fmtMs(directLoad.latencyMs.p99)}` },
      { metric: 'proxied: p50 / p99', value: `${fmtMs(proxiedLoad.latencyMs.p50)} / ${fmtMs(proxiedLoad.latencyMs.p99)}` },
      { metric: 'p50 proxied/direct', value: `${round(p50Ratio).toFixed(2)}x`, target: `<= ${TARGET_P50_RATIO}x`, verdict: verdict(p50Ratio <= TARGET_P50_RATIO), headline: true },
      { metric: 'p99 proxied/direct', value: `${round(p99Ratio).toFixed(2)}x`, headline: true },
      { metric: 'broker CPU per proxied request', value: fmtMs(cpuPerRequestMs) },
      { metric: 'stream: time to first chunk direct / proxied (p50)', value: `${fmtMs(directTtfc)} / ${fmtMs(proxiedTtfc)}` },
      { metric: 'stream: TTFC proxied - direct', value: fmtMs(ttfcDelta), target: `<= ${TARGET_TTFC_DELTA_MS} ms`, verdict: verdict(ttfcDelta <= TARGET_TTFC_DELTA_MS), headline: true },
    ];
    const failures = [...errors];
    if (directLoad.failed + proxiedLoad.failed > 0) failures.unshift(`${directLoad.failed} direct and ${proxiedLoad.failed} proxied requests failed`);
    return {
      name: 'proxy',
      rows,
      figures: {
        settings,
        direct: { ...directLoad, ttfcP50Ms: directTtfc },
        proxied: { ...proxiedLoad, ttfcP50Ms: proxiedTtfc, brokerCpuMsPerRequest: cpuPerRequestMs },
        ratios: { throughput: throughputRatio, p50: p50Ratio, p99: p99Ratio },
        ttfcDeltaMs: ttfcDelta,
      },
      failures,
    };
  } finally {
    await cleanup.run();
  }
}
