import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { base64url } from '../src/crypto/encoding.js';
import type { Identity } from '../src/identity/identity.js';
import type { Signer } from '../src/keys/key-store.js';
import { openStore } from '../src/store/database.js';
import { onFreePorts } from '../test/support/ports.js';

/** Shared helpers for the benchmark sections: statistics, a bounded load loop, /proc sampling, tables. */

// ---------------------------------------------------------------------------------------------
// Sections and results
// ---------------------------------------------------------------------------------------------

export type Verdict = 'PASS' | 'MISS' | '';

/** One line of a section's table. `target`/`verdict` are informational: a MISS never fails the run. */
export interface ResultRow {
  readonly metric: string;
  readonly value: string;
  readonly target?: string;
  readonly verdict?: Verdict;
  /** Shown in the run's summary table as well as the section's own. */
  readonly headline?: boolean;
}

export interface SectionResult {
  readonly name: string;
  readonly rows: readonly ResultRow[];
  /** Every figure of the section, for the BENCH_JSON line. */
  readonly figures: Record<string, unknown>;
  /** Hard failures (e.g. non-200 responses): any entry makes the run exit with code 1. */
  readonly failures: readonly string[];
}

export interface BenchSection {
  readonly name: string;
  readonly description: string;
  run(): Promise<SectionResult>;
}

export function verdict(ok: boolean): Verdict {
  return ok ? 'PASS' : 'MISS';
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/** Nearest-rank percentile (p in 0..100) of an ascending-sorted sample; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export function summarizeLatencies(samples: Float64Array): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
  };
}

export const round = (value: number, digits = 2): number => (Number.isFinite(value) ? Number(value.toFixed(digits)) : value);

// ---------------------------------------------------------------------------------------------
// Bounded loops
// ---------------------------------------------------------------------------------------------

/** Calls `fn` back to back for up to `durationMs` (and at most `maxIterations` times); returns ops/s. */
export function timedLoop(fn: () => void, durationMs: number, maxIterations = 50_000_000): { iterations: number; elapsedMs: number; perSecond: number } {
  const start = performance.now();
  const deadline = start + durationMs;
  let iterations = 0;
  // performance.now() costs well under a microsecond: checking it every call keeps the overrun below one call.
  while (iterations < maxIterations && performance.now() < deadline) {
    fn();
    iterations += 1;
  }
  const elapsedMs = performance.now() - start;
  return { iterations, elapsedMs, perSecond: (iterations / elapsedMs) * 1000 };
}

export interface LoadOptions<T> {
  /** Parallel request loops, each with at most one request in flight. */
  readonly concurrency: number;
  readonly durationMs: number;
  /** Hard cap on requests, whatever the duration. */
  readonly maxRequests: number;
  /** The next unit of work (e.g. a pre-signed proof); undefined when exhausted, which ends the loop. */
  next(): T | undefined;
  /** Sends one request; resolves true for a good response, false for a bad one (it must not throw). */
  send(item: T): Promise<boolean>;
}

export interface LoadResult {
  readonly sent: number;
  readonly ok: number;
  readonly failed: number;
  readonly elapsedMs: number;
  /** True when `next()` ran dry before the deadline. */
  readonly exhausted: boolean;
  /** Per-request latency in ms, in completion order. */
  readonly latenciesMs: Float64Array;
}

/** Closed-loop load: `concurrency` workers send back to back until the deadline, the cap or the work runs out. */
export async function runLoad<T>(options: LoadOptions<T>): Promise<LoadResult> {
  const latencies = new Float64Array(options.maxRequests);
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let exhausted = false;
  const start = performance.now();
  const deadline = start + options.durationMs;

  const loop = async () => {
    while (sent < options.maxRequests && performance.now() < deadline) {
      const item = options.next();
      if (item === undefined) {
        exhausted = true;
        return;
      }
      const index = sent;
      sent += 1;
      const t0 = performance.now();
      const good = await options.send(item);
      latencies[index] = performance.now() - t0;
      if (good) ok += 1;
      else failed += 1;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  const elapsedMs = performance.now() - start;
  return { sent, ok, failed, elapsedMs, exhausted, latenciesMs: latencies.subarray(0, sent) };
}

export interface PacedOptions<T> extends LoadOptions<T> {
  /** Total arrival rate over all clients, requests/s. */
  readonly ratePerSecond: number;
}

export interface PacedResult extends LoadResult {
  /** How late each request went out against its schedule, ms (timer slack, or every client busy). */
  readonly sendLagMs: Float64Array;
}

/**
 * Open-loop load: arrivals on a fixed schedule (`ratePerSecond` in total), each sent by whichever of
 * `concurrency` clients is free. Unlike runLoad, the offered load does not depend on how fast the
 * server answers, so latency is what a client sees at that load, not the length of a queue that the
 * closed loop keeps full. Latency is measured from the actual send; lag behind the schedule separately.
 */
export async function runPaced<T>(options: PacedOptions<T>): Promise<PacedResult> {
  const total = Math.min(options.maxRequests, Math.floor((options.durationMs / 1000) * options.ratePerSecond));
  const intervalMs = 1000 / options.ratePerSecond;
  const latencies = new Float64Array(total);
  const lags = new Float64Array(total);
  let claimed = 0;
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let exhausted = false;
  const start = performance.now();

  const loop = async () => {
    while (claimed < total) {
      const index = claimed++;
      const item = options.next();
      if (item === undefined) {
        exhausted = true;
        return;
      }
      const due = start + index * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const t0 = performance.now();
      lags[sent] = Math.max(0, t0 - due);
      const slot = sent++;
      const good = await options.send(item);
      latencies[slot] = performance.now() - t0;
      if (good) ok += 1;
      else failed += 1;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, loop));
  const elapsedMs = performance.now() - start;
  return { sent, ok, failed, elapsedMs, exhausted, latenciesMs: latencies.subarray(0, sent), sendLagMs: lags.subarray(0, sent) };
}

// ---------------------------------------------------------------------------------------------
// Processes: /proc sampling, CPU pinning, ports
// ---------------------------------------------------------------------------------------------

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Current resident set size of a process in bytes (Linux /proc), undefined if unavailable. */
export const readRss = (pid: number) => statusField(pid, 'VmRSS');
/** Peak resident set size ("high water mark") of a process in bytes. */
export const readPeakRss = (pid: number) => statusField(pid, 'VmHWM');

/** User+system CPU time a process has used so far, in ms (from /proc/<pid>/stat). */
export function readCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after it start past the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of the full line)
    return (ticks / clockTicksPerSecond()) * 1000;
  } catch {
    return undefined;
  }
}

let ticksPerSecond: number | undefined;
function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const value = Number(result.stdout?.trim());
    ticksPerSecond = Number.isFinite(value) && value > 0 ? value : 100;
  }
  return ticksPerSecond;
}

/** Samples a process's RSS at an interval; `stop()` returns the largest sample in bytes. */
export function sampleRss(pid: number, intervalMs = 200): { stop(): number } {
  let max = readRss(pid) ?? 0;
  const timer = setInterval(() => {
    max = Math.max(max, readRss(pid) ?? 0);
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      max = Math.max(max, readRss(pid) ?? 0);
      return max;
    },
  };
}

/**
 * CPU pinning for the child processes: with taskset and at least two CPUs, the broker gets CPU 0
 * and the load generator CPU 1, so neither can take the other's core. BENCH_NO_PIN=1 turns it off.
 */
export interface CpuPlan {
  readonly pinned: boolean;
  readonly brokerCpu?: number;
  readonly loadCpu?: number;
  /** Prefix for a command line: e.g. ['taskset', '-c', '0']. */
  prefix(role: 'broker' | 'load'): string[];
}

export function cpuPlan(): CpuPlan {
  const available = availableParallelism();
  const taskset = process.env.BENCH_NO_PIN !== '1' && available >= 2 && spawnSync('taskset', ['--version']).status === 0;
  if (!taskset) return { pinned: false, prefix: () => [] };
  return {
    pinned: true,
    brokerCpu: 0,
    loadCpu: 1,
    prefix: (role) => ['taskset', '-c', role === 'broker' ? '0' : '1'],
  };
}

// ---------------------------------------------------------------------------------------------
// Environment knobs (bounded) and formatting
// ---------------------------------------------------------------------------------------------

/** A numeric setting from the environment, clamped to [min, max]. */
export function envNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name} must be a number (got "${raw}")`);
  return Math.min(max, Math.max(min, value));
}

export const fmtInt = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a');
export const fmtMs = (value: number) => (Number.isFinite(value) ? `${value.toFixed(2)} ms` : 'n/a');
export const fmtMb = (bytes: number | undefined) => (bytes === undefined ? 'n/a' : `${(bytes / 1024 / 1024).toFixed(1)} MB`);
export const fmtPct = (value: number) => (Number.isFinite(value) ? `${value.toFixed(0)} %` : 'n/a');

/** Plain-text table with a header rule; every row must have as many cells as `headers`. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  return [line(headers), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}

export function formatRows(rows: readonly ResultRow[]): string {
  return formatTable(['metric', 'value', 'target', ''], rows.map((row) => [row.metric, row.value, row.target ?? '', row.verdict ?? '']));
}

// ---------------------------------------------------------------------------------------------
// Clean-up: child processes and temp dirs go however a section ends, Ctrl-C included
// ---------------------------------------------------------------------------------------------

const pendingCleanups = new Set<Cleanup>();

/** LIFO stack of clean-up steps; every step runs even when an earlier one fails. */
export class Cleanup {
  readonly #steps: { label: string; step: () => Promise<unknown> }[] = [];

  constructor() {
    pendingCleanups.add(this);
  }

  add(label: string, step: () => Promise<unknown>): void {
    this.#steps.push({ label, step });
  }

  async run(): Promise<void> {
    pendingCleanups.delete(this);
    while (this.#steps.length > 0) {
      const { label, step } = this.#steps.pop()!;
      try {
        await step();
      } catch (error) {
        log(`clean-up "${label}" failed: ${(error as Error).message}`);
      }
    }
  }
}

/** For signal handlers: runs every clean-up stack not yet run. */
export async function runPendingCleanups(): Promise<void> {
  await Promise.all([...pendingCleanups].map((cleanup) => cleanup.run()));
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves when the child exits, or false after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** SIGTERM, then SIGKILL if the child has not exited within `graceMs`. Only ever signals this child's pid. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (exited(child) || child.pid === undefined) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, graceMs)) return;
  child.kill('SIGKILL');
  await waitForExit(child, 2_000);
}

/**
 * A child process's IPC channel (a load generator): typed messages out, and a time-bounded wait for
 * the next message of a type in. The child reports failures as `{type: 'error', message}`.
 */
export class ChildChannel<In extends { readonly type: string }, Out extends object> {
  readonly #queue: (In | { readonly type: 'error'; readonly message: string })[] = [];
  #wake: (() => void) | undefined;
  #exitInfo: string | undefined;

  constructor(readonly child: ChildProcess) {
    child.on('message', (message: In) => {
      this.#queue.push(message);
      this.#wake?.();
    });
    child.on('exit', (code, signal) => {
      this.#exitInfo = `exit ${code ?? signal}`;
      this.#wake?.();
    });
  }

  send(message: Out): void {
    this.child.send(message);
  }

  /** The next message of `type` (earlier ones of other types are dropped); throws on error/exit/timeout. */
  async expect<T extends In>(type: T['type'], timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = this.#queue.shift();
      if (message?.type === 'error' && 'message' in message) throw new Error(`load generator failed: ${message.message}`);
      if (message?.type === type) return message as T;
      if (message) continue;
      if (this.#exitInfo !== undefined) throw new Error(`load generator ended (${this.#exitInfo}) before "${type}"`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for "${type}" from the load generator`);
      await new Promise<void>((resolveWait) => {
        const timer = setTimeout(resolveWait, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolveWait();
        };
      });
      this.#wake = undefined;
    }
  }
}

/** Runs a bench script that prints its listening port on its first line of stdout; stopped on `cleanup`. */
export async function startListeningScript(
  cleanup: Cleanup,
  label: string,
  script: string,
  options: { env?: Record<string, string>; prefix?: readonly string[] } = {},
): Promise<{ url: string; child: ChildProcess }> {
  const [command, ...args] = [...(options.prefix ?? []), process.execPath];
  const child = spawn(command!, [...args, script], { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'inherit'] });
  cleanup.add(`stop ${label}`, () => stopChild(child));
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout!.once('data', (data: Buffer) => resolve(data.toString().trim()));
    child.once('exit', (code) => reject(new Error(`${label} exited (${code})`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

const BARE_VERIFY_SERVER = fileURLToPath(new URL('./bare-verify-server.js', import.meta.url));

/** bare-verify-server.ts for these identities (id -> raw Ed25519 public key), on the broker's CPU. */
export function startBareVerifyServer(cleanup: Cleanup, keys: ReadonlyMap<string, Uint8Array>, prefix?: readonly string[]): Promise<{ url: string; child: ChildProcess }> {
  const json = JSON.stringify(Object.fromEntries([...keys].map(([kid, key]) => [kid, Buffer.from(key).toString('base64url')])));
  return startListeningScript(cleanup, 'bare verify server', BARE_VERIFY_SERVER, { env: { BENCH_BARE_KEYS: json }, ...(prefix && { prefix }) });
}

// ---------------------------------------------------------------------------------------------
// A broker under test: `tessera init` + `tessera serve` from the built CLI, in one child process
// ---------------------------------------------------------------------------------------------

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** The environment for the CLI children: ours minus any Tessera/SoftHSM settings, so the embedded defaults apply. */
export function cliEnvironment(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('TESSERA_') || name === 'SOFTHSM2_CONF' || name === 'NODE_OPTIONS') continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

export interface BenchBroker {
  readonly url: string;
  /** The credential proxy's listener (base_url of proxied leases). */
  readonly proxyUrl: string;
  readonly dataDir: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Environment naming the data dir and listen address, for other processes (load generators) to use. */
  readonly env: NodeJS.ProcessEnv;
  /** Last lines of the broker's stdout/stderr, for failure reports. */
  logTail(lines?: number): string;
}

export interface BenchBrokerOptions {
  /** Command prefix, e.g. taskset pinning. */
  readonly prefix?: readonly string[];
  readonly readyTimeoutMs?: number;
  /** A bench-only script to run instead of `tessera serve` (e.g. audit-toggle-serve.js), with extra environment. */
  readonly serveScript?: string;
  readonly serveEnv?: Record<string, string>;
}

/**
 * A temp data dir initialised by `tessera init` (SQLite file + SoftHSM2 token, the embedded
 * defaults), and `tessera serve` on it (serveBench). Registers its clean-up (broker stop, data dir
 * incl. token removal) on `cleanup`.
 */
export async function startBenchBroker(cleanup: Cleanup, options: BenchBrokerOptions = {}): Promise<BenchBroker> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-bench-'));
  cleanup.add('remove data dir', () => rm(dataDir, { recursive: true, force: true }));
  // Every load loop connects from 127.0.0.1: no per-address connection limit.
  const env = cliEnvironment({ TESSERA_DATA_DIR: dataDir, TESSERA_MAX_CONNECTIONS_PER_ADDRESS: '0' });
  initBench(env);
  return serveBench(cleanup, env, options);
}

/** `tessera init --json` with `env`. */
export function initBench(env: NodeJS.ProcessEnv): void {
  const init = spawnSync(process.execPath, [CLI, 'init', '--json'], { env, encoding: 'utf8', timeout: 60_000 });
  if (init.status !== 0) throw new Error(`tessera init failed (${init.status ?? init.signal}): ${init.stderr || init.stdout}`);
}

/**
 * `tessera serve` (or options.serveScript) with `env` (which names an initialised TESSERA_DATA_DIR)
 * on free loopback ports for its API and credential proxy, on new ones if they were taken meanwhile
 * (onFreePorts); stopped on `cleanup`.
 */
export function serveBench(cleanup: Cleanup, baseEnv: NodeJS.ProcessEnv, options: BenchBrokerOptions = {}): Promise<BenchBroker> {
  const dataDir = baseEnv.TESSERA_DATA_DIR!;
  return onFreePorts(2, async ([port, proxyPort]) => {
    const url = `http://127.0.0.1:${port}`;
    const env = { ...baseEnv, TESSERA_LISTEN: `127.0.0.1:${port}`, TESSERA_PROXY_LISTEN: `127.0.0.1:${proxyPort}` };
    // stdout (pino request logs at the default level) goes to a file: realistic, and cheap to keep.
    const logPath = join(dataDir, `broker-${port}.log`);
    const logFd = openSync(logPath, 'a');
    const [command, ...prefixArgs] = [...(options.prefix ?? []), process.execPath];
    // BENCH_CPU_PROF=<dir>: a V8 CPU profile of the broker, whichever section starts it.
    const profileDir = process.env.BENCH_CPU_PROF;
    const nodeFlags = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(profileDir)}`] : [];
    const child = spawn(command!, [...prefixArgs, ...nodeFlags, options.serveScript ?? CLI, 'serve'], {
      env: { ...env, ...options.serveEnv },
      stdio: ['ignore', logFd, logFd],
    });
    closeSync(logFd);
    cleanup.add(`stop broker ${url}`, () => stopChild(child, 10_000));
    if (child.pid === undefined) throw new Error('could not start the broker process');
    const logTail = (lines = 20) => {
      try {
        return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    };

    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
    for (;;) {
      if (exited(child)) throw new Error(`the broker exited during start-up (${child.exitCode ?? child.signalCode}):\n${logTail()}`);
      if (Date.now() > deadline) throw new Error(`the broker did not answer on ${url} in time:\n${logTail()}`);
      try {
        const response = await fetch(`${url}/.well-known/tessera-configuration`, { signal: AbortSignal.timeout(1_000) });
        await response.arrayBuffer();
        if (response.ok) break;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { url, proxyUrl: `http://127.0.0.1:${proxyPort}`, dataDir, pid: child.pid, child, env, logTail };
  });
}

export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** An Ed25519 key held in this process (bench agents and authorities: no key store round trip per signature). */
export function memorySigner(): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { uri: 'memory:bench', publicKey: base64url.decode(publicKey.export({ format: 'jwk' }).x!), sign: async (data) => new Uint8Array(sign(null, data, privateKey)) };
}

/** An agent whose key is in memory, written into the broker's database as provisioning + enrollment would leave it. */
export interface RegisteredAgent {
  readonly id: string;
  readonly address: string;
  readonly signer: Signer;
}

/** Writes active agents (identity + its first key) straight into the broker's database: set-up without a key store round trip per agent. */
export async function registerActiveAgents(databaseUrl: string, agents: readonly RegisteredAgent[], attributes: Record<string, string> = {}): Promise<void> {
  const store = await openStore(databaseUrl, { create: false });
  try {
    const now = Date.now();
    await store.transaction(async (repos) => {
      for (const agent of agents) {
        const identity: Identity = {
          id: agent.id,
          address: agent.address,
          role: 'agent',
          status: 'active',
          publicKey: agent.signer.publicKey,
          keyUri: 'memory:bench',
          attributes,
          createdAt: now,
          enrolledAt: now,
          revokedAt: null,
          revokedBy: null,
          revocationReason: null,
        };
        await repos.identities.insert(identity, null);
        await repos.identityKeys.add({ keyId: agent.id, identityId: agent.id, publicKey: agent.signer.publicKey, keyUri: identity.keyUri, createdAt: now, notAfter: null, retiredAt: null });
      }
    });
  } finally {
    await store.close();
  }
}
