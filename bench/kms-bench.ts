/**
 * KMS section (issue 13): what keeping agents' primary keys in a KMS costs next to SoftHSM2.
 *
 * The dev KMS (src/devkms) runs in this process with AWS-like realism: every Sign and Verify answer
 * held back BENCH_KMS_SIGN_LATENCY_MS (25) ms, and one token bucket of BENCH_KMS_QUOTA (300) Sign/Verify
 * calls per second (burst: one second's worth) shared by every key, answering ThrottlingException
 * past it. `tessera serve` (SQLite + SoftHSM2, as in the identity section) runs pinned to the broker
 * CPU; kms-agents-worker.ts, pinned to the load CPU, provisions BENCH_KMS_AGENTS (16) agents with
 * keys in the dev KMS and as many with keys in the broker's SoftHSM2 token, and drives each agent
 * through the SDK (createClient on its key URI, one whoami() in flight per agent).
 *
 * Windows of BENCH_KMS_DURATION_S (8) s, each after BENCH_KMS_WARMUP_S (1) s of warm-up, alternate
 * SoftHSM2 / KMS for BENCH_KMS_ROUNDS (2) rounds: the ratio is measured side by side on the same
 * (busy) machine. KMS Sign calls are counted at the dev KMS during each window.
 *
 * Modes: per-request signing (`sessions: false`: every proof signed by the primary key, one KMS Sign
 * per request) and session keys (issue 13 §1, the SDK's default: the primary key signs one session
 * certificate per BENCH_KMS_SESSION_LIFETIME_S (900) s, renewed at about 2/3 of it; requests are signed
 * by an in-memory key), for both stores. BENCH_KMS_SESSIONS=0 runs per-request signing only. KMS Sign
 * calls per agent-hour with sessions are projected from the calls one session set-up takes (measured
 * in the first warm-up) and the renewal period: a window is far shorter than a session.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDevKms } from '../src/devkms/server.js';
import type { AgentsGo, AgentsMessage, AgentsReady, AgentsResult, AgentsSetup, AgentStore, WindowPlan, WindowReport } from './kms-agents-worker.js';
import {
  type BenchSection,
  ChildChannel,
  Cleanup,
  cpuPlan,
  envNumber,
  fmtInt,
  fmtMs,
  log,
  type ResultRow,
  round,
  type SectionResult,
  startBenchBroker,
  stopChild,
  verdict,
} from './support.js';

/** Issue 13: with sessions, KMS-backed agents reach at least this share of the same agents on SoftHSM2. */
const TARGET_SESSIONS_RATIO = 0.8;
const HOUR_MS = 3_600_000;

const WORKER = fileURLToPath(new URL('./kms-agents-worker.js', import.meta.url));

export const kmsSection: BenchSection = {
  name: 'kms',
  description: '16 agents with keys in a dev KMS (25 ms Sign, 300/s quota) vs on SoftHSM2, with and without session keys: whoami requests/s side by side, KMS Sign calls per agent-hour',
  run: runKmsBench,
};

interface Measured {
  readonly plan: WindowPlan;
  readonly windows: WindowReport[];
  readonly signCalls: number;
  readonly throttledSigns: number;
  /** Sign calls in the warm-up of the mode's first window: with sessions, every agent's first session. */
  readonly firstWarmupSigns: number;
}

async function runKmsBench(): Promise<SectionResult> {
  const settings = {
    agents: Math.round(envNumber('BENCH_KMS_AGENTS', 16, 1, 64)),
    signLatencyMs: envNumber('BENCH_KMS_SIGN_LATENCY_MS', 25, 0, 1000),
    quotaPerSecond: envNumber('BENCH_KMS_QUOTA', 300, 1, 100_000),
    durationMs: envNumber('BENCH_KMS_DURATION_S', 8, 1, 60) * 1000,
    warmupMs: envNumber('BENCH_KMS_WARMUP_S', 1, 0, 30) * 1000,
    rounds: Math.round(envNumber('BENCH_KMS_ROUNDS', 2, 1, 10)),
    sessions: process.env.BENCH_KMS_SESSIONS !== '0',
    sessionLifetimeSeconds: Math.round(envNumber('BENCH_KMS_SESSION_LIFETIME_S', 900, 60, 3600)),
  };
  const sessionSettings = settings.sessions ? [false, true] : [false];
  const modes: WindowPlan[] = sessionSettings.flatMap((sessions) => (['softhsm', 'kms'] as const).map((store) => ({ store, sessions })));
  const windows = Array.from({ length: settings.rounds }, () => modes).flat();

  const cpus = cpuPlan();
  const cleanup = new Cleanup();
  try {
    // The dev KMS stands for a remote service: here, on no pinned CPU, not in the agents' process.
    const kms = await startDevKms({ port: 0, signLatencyMs: settings.signLatencyMs, asymmetricQuota: { ratePerSecond: settings.quotaPerSecond } });
    cleanup.add('stop dev KMS', () => kms.close());
    const awsEnv = { AWS_ENDPOINT_URL_KMS: kms.url, AWS_REGION: kms.region, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' };

    log(`kms: starting the broker (tessera init + serve${cpus.pinned ? `, pinned to CPU ${cpus.brokerCpu}` : ''})`);
    const broker = await startBenchBroker(cleanup, { prefix: cpus.prefix('broker') });

    const [command, ...prefixArgs] = [...cpus.prefix('load'), process.execPath];
    const child = spawn(command!, [...prefixArgs, WORKER], { env: { ...broker.env, ...awsEnv }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    cleanup.add('stop agents', () => stopChild(child));
    const worker = new ChildChannel<AgentsMessage, AgentsSetup | AgentsGo>(child);
    worker.send({ type: 'setup', agents: settings.agents });
    log(`kms: provisioning + enrolling ${settings.agents} agent(s) with keys in the dev KMS and ${settings.agents} in the SoftHSM2 token`);
    const ready = await worker.expect<AgentsReady>('ready', 300_000);

    log(
      `kms: ${windows.length} windows of ${settings.durationMs / 1000} s (+${settings.warmupMs / 1000} s warm-up each): ` +
        windows.map((plan) => label(plan)).join(', '),
    );
    worker.send({ type: 'go', windows, warmupMs: settings.warmupMs, durationMs: settings.durationMs, sessionLifetimeSeconds: settings.sessionLifetimeSeconds });
    // Sign calls at the dev KMS in each window's warm-up and in the window itself.
    const signs: { warmup: number; calls: number; throttled: number }[] = [];
    const signCount = () => kms.counts().Sign ?? { requests: 0, throttled: 0 };
    const windowTimeout = settings.warmupMs + settings.durationMs + 120_000;
    for (let index = 0; index < windows.length; index += 1) {
      await worker.expect('warmup-start', windowTimeout);
      const warmup = signCount();
      await worker.expect('window-start', windowTimeout);
      const before = signCount();
      await worker.expect('window-end', windowTimeout);
      const after = signCount();
      signs.push({ warmup: before.requests - warmup.requests, calls: after.requests - before.requests, throttled: after.throttled - before.throttled });
    }
    const result = await worker.expect<AgentsResult>('result', 60_000);

    const measured: Measured[] = modes.map((plan) => {
      const indexes = windows.flatMap((candidate, index) => (candidate === plan ? [index] : []));
      return {
        plan,
        windows: indexes.map((index) => result.windows[index]!),
        signCalls: indexes.reduce((sum, index) => sum + signs[index]!.calls, 0),
        firstWarmupSigns: signs[indexes[0]!]!.warmup,
        throttledSigns: indexes.reduce((sum, index) => sum + signs[index]!.throttled, 0),
      };
    });
    return report(settings, measured, ready.setupMs, cpus.pinned);
  } finally {
    await cleanup.run();
  }
}

const label = (plan: WindowPlan) => `${plan.store === 'kms' ? 'KMS' : 'SoftHSM2'}${plan.sessions ? ' + sessions' : ''}`;

function report(
  settings: {
    agents: number;
    signLatencyMs: number;
    quotaPerSecond: number;
    durationMs: number;
    warmupMs: number;
    rounds: number;
    sessions: boolean;
    sessionLifetimeSeconds: number;
  },
  measured: Measured[],
  setupMs: number,
  pinned: boolean,
): SectionResult {
  const summary = measured.map((mode) => {
    const ok = mode.windows.reduce((sum, window) => sum + window.ok, 0);
    const failed = mode.windows.reduce((sum, window) => sum + window.failed, 0);
    const elapsedMs = mode.windows.reduce((sum, window) => sum + window.elapsedMs, 0);
    const failures: Record<string, number> = {};
    for (const window of mode.windows) for (const [code, count] of Object.entries(window.failures)) failures[code] = (failures[code] ?? 0) + count;
    return {
      ...mode,
      ok,
      failed,
      failures,
      requestsPerSecond: (ok / elapsedMs) * 1000,
      perWindow: mode.windows.map((window) => window.requestsPerSecond),
      p50: median(mode.windows.map((window) => window.latencyMs.p50)),
      p99: Math.max(...mode.windows.map((window) => window.latencyMs.p99)),
      signsPerAgentHour: (mode.signCalls / settings.agents / elapsedMs) * HOUR_MS,
      signsPerRequest: ok + failed > 0 ? mode.signCalls / (ok + failed) : Number.NaN,
      errorSamples: mode.windows.flatMap((window) => window.errorSamples).slice(0, 3),
    };
  });
  const find = (store: AgentStore, sessions: boolean) => summary.find((mode) => mode.plan.store === store && mode.plan.sessions === sessions);
  const softhsm = find('softhsm', false)!;
  const kms = find('kms', false)!;
  const softhsmSessions = find('softhsm', true);
  const kmsSessions = find('kms', true);

  const failures: string[] = [];
  for (const mode of summary) {
    if (mode.ok === 0) failures.push(`${label(mode.plan)}: no request succeeded (${mode.errorSamples.join(' | ')})`);
    // Throttling that outlasts the SDK's retries is what the section measures for KMS; anything else is a fault.
    const unexpected = Object.entries(mode.failures).filter(([code]) => !(mode.plan.store === 'kms' && code === 'key_store_error'));
    if (unexpected.length > 0) failures.push(`${label(mode.plan)}: failed requests ${JSON.stringify(Object.fromEntries(unexpected))}: ${mode.errorSamples.join(' | ')}`);
  }

  const ratio = kms.requestsPerSecond / softhsm.requestsPerSecond;
  const rows: ResultRow[] = [
    {
      metric: 'setting',
      value:
        `${settings.agents} agents per store, one whoami() in flight each; dev KMS: ${settings.signLatencyMs} ms Sign latency, ` +
        `${settings.quotaPerSecond}/s Sign+Verify quota; ${settings.rounds} round(s) of ${settings.durationMs / 1000} s windows, alternating`,
    },
    ...summary.map((mode) => ({
      metric: `${label(mode.plan)}: whoami`,
      value:
        `${fmtInt(mode.requestsPerSecond)} req/s (windows ${mode.perWindow.map((rate) => fmtInt(rate)).join(' / ')}), ` +
        `p50 ${fmtMs(mode.p50)}, p99 ${fmtMs(mode.p99)}${mode.failed > 0 ? `, ${fmtInt(mode.failed)} failed ${JSON.stringify(mode.failures)}` : ''}`,
      headline: true,
    })),
    { metric: 'ratio KMS / SoftHSM2 (no sessions)', value: ratio.toFixed(3), headline: true },
    {
      metric: 'note',
      value:
        `without sessions each request is one KMS Sign: the fleet can never pass ${fmtInt(settings.quotaPerSecond)} req/s (the quota), and each agent ` +
        `${fmtInt(1000 / Math.max(settings.signLatencyMs, 1))} req/s (one ${settings.signLatencyMs} ms Sign at a time), however fast broker and agents are`,
    },
    {
      metric: 'KMS Sign calls per agent-hour (no sessions)',
      value: `${fmtInt(kms.signsPerAgentHour)} (${kms.signsPerRequest.toFixed(2)} per request; ${fmtInt(kms.throttledSigns)} of ${fmtInt(kms.signCalls)} throttled)`,
      headline: true,
    },
  ];
  if (kmsSessions && softhsmSessions) {
    const sessionsRatio = kmsSessions.requestsPerSecond / softhsm.requestsPerSecond;
    rows.push(
      {
        metric: 'ratio KMS + sessions / SoftHSM2 (no sessions)',
        value: sessionsRatio.toFixed(3),
        target: `>= ${TARGET_SESSIONS_RATIO}`,
        verdict: verdict(sessionsRatio >= TARGET_SESSIONS_RATIO),
        headline: true,
      },
      { metric: 'ratio KMS + sessions / SoftHSM2 + sessions', value: (kmsSessions.requestsPerSecond / softhsmSessions.requestsPerSecond).toFixed(3), headline: true },
      {
        metric: 'KMS Sign calls per agent-hour (sessions)',
        value:
          `${fmtInt(sessionSignsPerAgentHour(kmsSessions.firstWarmupSigns / settings.agents, settings.sessionLifetimeSeconds))} projected: ` +
          `${(kmsSessions.firstWarmupSigns / settings.agents).toFixed(1)} Sign calls per session set-up (measured) x one session per ` +
          `${fmtInt(settings.sessionLifetimeSeconds * SDK_RENEWAL_SHARE)} s (${settings.sessionLifetimeSeconds / 60} min lifetime renewed at ~${SDK_RENEWAL_SHARE.toFixed(2)} of it); ` +
          `in the windows: ${fmtInt(kmsSessions.signCalls)} calls`,
        headline: true,
      },
    );
  } else {
    rows.push({
      metric: 'ratio KMS + sessions / SoftHSM2',
      value: 'not measured (BENCH_KMS_SESSIONS=0)',
      target: `>= ${TARGET_SESSIONS_RATIO}`,
      verdict: verdict(false),
    });
  }
  rows.push({ metric: 'set-up (provision + enroll both fleets)', value: `${(setupMs / 1000).toFixed(1)} s${pinned ? '; broker and agents pinned to their own CPUs' : ''}` });

  const figures = {
    settings: { ...settings, pinned },
    modes: summary.map((mode) => ({
      store: mode.plan.store,
      sessions: mode.plan.sessions,
      requestsPerSecond: round(mode.requestsPerSecond, 1),
      perWindowRequestsPerSecond: mode.perWindow.map((rate) => round(rate, 1)),
      ok: mode.ok,
      failed: mode.failed,
      failures: mode.failures,
      latencyMs: { p50: round(mode.p50, 3), p99: round(mode.p99, 3) },
      kmsSignCalls: mode.signCalls,
      kmsSignsThrottled: mode.throttledSigns,
      kmsSignsPerAgentHour: round(mode.signsPerAgentHour, 0),
      kmsSignsInFirstWarmup: mode.firstWarmupSigns,
    })),
    kmsSessionSignsPerAgentHourProjected: kmsSessions
      ? round(sessionSignsPerAgentHour(kmsSessions.firstWarmupSigns / settings.agents, settings.sessionLifetimeSeconds), 1)
      : null,
    ratioKmsToSoftHsm: round(ratio, 4),
    ratioKmsSessionsToSoftHsm: kmsSessions ? round(kmsSessions.requestsPerSecond / softhsm.requestsPerSecond, 4) : null,
    ratioKmsSessionsToSoftHsmSessions: kmsSessions && softhsmSessions ? round(kmsSessions.requestsPerSecond / softhsmSessions.requestsPerSecond, 4) : null,
    setupMs: round(setupMs, 0),
  };
  return { name: kmsSection.name, rows, figures, failures };
}

/**
 * Where in its lifetime the SDK renews a session on average (packages/sdk/src/sessions/session-keys.ts:
 * at 2/3, minus a random jitter of up to 1/10 of the lifetime).
 */
const SDK_RENEWAL_SHARE = 2 / 3 - 1 / 20;

/** A session's Sign calls (certificate + its registration's proof), once per renewal period. */
function sessionSignsPerAgentHour(signsPerSession: number, lifetimeSeconds: number): number {
  return (signsPerSession * HOUR_MS) / (lifetimeSeconds * SDK_RENEWAL_SHARE * 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
}
