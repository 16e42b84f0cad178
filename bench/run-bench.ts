/**
 * Run section: `tessera run` around a command that does nothing, to time what it adds.
 *
 *  1. broker: `tessera serve` (embedded defaults) with a postgres backend on a fresh cluster and its
 *     default roles; one provisioned + enrolled agent granted `readonly` and `readwrite`.
 *  2. BENCH_RUN_N times: `tessera run --lease orders:readonly --lease W=orders:readwrite -- sh -c
 *     'date +%s%N'` (the command prints when it ends, then exits). Measured: start -> command running
 *     (Node start-up, key store, two leases), and command end -> tessera exited, by which time both
 *     leases are revoked upstream (checked: no leased role is left).
 *
 * Knob (bounded): BENCH_RUN_N (10).
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startPostgres, withClient } from '../test/support/postgres.js';
import { type BenchSection, Cleanup, envNumber, fmtMs, log, percentile, type ResultRow, type SectionResult, startBenchBroker, verdict } from './support.js';

const TARGET_REVOKED_MS = 1_000;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const AGENT = 'run-bench@bench.local';

export const runSection: BenchSection = {
  name: 'run',
  description: '`tessera run`: start-up with two leases, and command exit -> every lease revoked',
  run: runRunBench,
};

function cli(env: NodeJS.ProcessEnv, args: string[]): string {
  const result = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`tessera ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
  return result.stdout;
}

/** One `tessera run`: ms from spawning it to the command's end, and from the command's end to tessera's exit. */
function timedRun(env: NodeJS.ProcessEnv, keyUri: string): Promise<{ startMs: number; revokedMs: number; code: number | null; stderr: string }> {
  const args = ['run', '--lease', 'orders:readonly', '--lease', 'W=orders:readwrite', '--key', keyUri, '--', 'sh', '-c', 'date +%s%N'];
  const spawnedAt = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      const exitedAt = Date.now();
      const commandEndedAt = Number(stdout.trim()) / 1e6;
      resolve({ startMs: commandEndedAt - spawnedAt, revokedMs: exitedAt - commandEndedAt, code, stderr });
    });
  });
}

async function runRunBench(): Promise<SectionResult> {
  const runs = Math.round(envNumber('BENCH_RUN_N', 10, 1, 100));
  const cleanup = new Cleanup();
  try {
    log('run: starting a PostgreSQL cluster and a broker');
    const upstream = await startPostgres();
    cleanup.add('destroy PostgreSQL cluster', () => upstream.destroy());
    const broker = await startBenchBroker(cleanup);
    cli({ ...broker.env, TESSERA_BACKEND_CONNECTION_URL: upstream.url }, ['backend', 'add', 'postgres', 'orders']);
    const agent = JSON.parse(cli(broker.env, ['provision', AGENT, '--json'])) as { key_uri: string; ticket: string };
    cli(broker.env, ['enroll', '--ticket', agent.ticket, '--key', agent.key_uri]);
    for (const role of ['readonly', 'readwrite']) cli(broker.env, ['grant', AGENT, 'orders', '--role', role, '--max-ttl', '1h', '--default-ttl', '15m']);

    const failures: string[] = [];
    const startMs: number[] = [];
    const revokedMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const run = await timedRun(broker.env, agent.key_uri);
      if (run.code !== 0 || run.stderr !== '') failures.push(`tessera run exited ${run.code}: ${run.stderr.trim()}`);
      startMs.push(run.startMs);
      revokedMs.push(run.revokedMs);
    }
    const leftover = await withClient(upstream.url, async (client) => (await client.query("SELECT 1 FROM pg_roles WHERE rolname ~ '^tessera_.*_[0-9a-f]{16}$'")).rowCount ?? 0);
    if (leftover > 0) failures.push(`${leftover} leased role(s) left upstream after tessera run exited`);

    startMs.sort((a, b) => a - b);
    revokedMs.sort((a, b) => a - b);
    const worst = revokedMs.at(-1)!;
    const rows: ResultRow[] = [
      { metric: `tessera run start -> command ran (2 leases), p50 / max of ${runs}`, value: `${fmtMs(percentile(startMs, 50))} / ${fmtMs(startMs.at(-1)!)}`, headline: true },
      {
        metric: `command exit -> tessera exited, 2 leases revoked, p50 / max of ${runs}`,
        value: `${fmtMs(percentile(revokedMs, 50))} / ${fmtMs(worst)}`,
        target: `max <= ${TARGET_REVOKED_MS} ms`,
        verdict: verdict(worst <= TARGET_REVOKED_MS),
        headline: true,
      },
    ];
    return { name: runSection.name, rows, figures: { runs, startMs, revokedMs, leftover }, failures };
  } finally {
    await cleanup.run();
  }
}
