/**
 * `npm run bench`: runs the benchmark sections in order, prints each section's table, a summary
 * table and one final `BENCH_JSON {...}` line with every figure.
 *
 * Timing targets are informational (PASS/MISS, never a failure); a section's hard failures (e.g.
 * a non-200 response) or a crash make the run exit with code 1.
 *
 * `node dist/bench/run.js [section ...]` runs only the named sections. Add a section: a new file
 * exporting a BenchSection, plus an entry in SECTIONS.
 */
import { availableParallelism, cpus, loadavg } from 'node:os';
import { auditSection } from './audit-bench.js';
import { delegationSection } from './delegation-bench.js';
import { floodSection } from './flood-bench.js';
import { identitySection } from './identity-bench.js';
import { kmsSection } from './kms-bench.js';
import { leaseSection } from './lease-bench.js';
import { massExpirySection } from './mass-expiry-bench.js';
import { proxySection } from './proxy-bench.js';
import { replicasSection } from './replicas-bench.js';
import { runSection } from './run-bench.js';
import { type BenchSection, formatRows, formatTable, log, runPendingCleanups, type SectionResult } from './support.js';

const SECTIONS: readonly BenchSection[] = [identitySection, leaseSection, massExpirySection, auditSection, proxySection, floodSection, runSection, replicasSection, delegationSection, kmsSection];

async function main(): Promise<number> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((name) => !SECTIONS.some((section) => section.name === name));
  if (unknown.length > 0) {
    log(`unknown section(s): ${unknown.join(', ')}; known: ${SECTIONS.map((section) => section.name).join(', ')}`);
    return 2;
  }
  const selected = wanted.length === 0 ? SECTIONS : SECTIONS.filter((section) => wanted.includes(section.name));

  // Other work on the machine skews every figure: record the load average before and after.
  const loadBefore = loadavg()[0]!;
  const results: SectionResult[] = [];
  const crashed: { name: string; error: string }[] = [];
  for (const section of selected) {
    if (stopping) break;
    log(`section ${section.name}: ${section.description}`);
    try {
      const result = await section.run();
      results.push(result);
      process.stdout.write(`\n== ${section.name} ==\n${formatRows(result.rows)}\n`);
      for (const failure of result.failures) process.stdout.write(`FAILED: ${failure}\n`);
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      crashed.push({ name: section.name, error: message });
      process.stdout.write(`\n== ${section.name} ==\nFAILED: ${message}\n`);
    }
  }

  // Summary: the headline rows (and any row with a target) of every section.
  const summary = results.flatMap((result) =>
    result.rows.filter((row) => row.headline || row.target !== undefined).map((row) => [result.name, row.metric, row.value, row.target ?? '', row.verdict ?? '']),
  );
  const failed = crashed.length > 0 || results.some((result) => result.failures.length > 0);
  process.stdout.write(`\n== summary (${machine()}; 1-min load average ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after) ==\n`);
  if (summary.length > 0) process.stdout.write(`${formatTable(['section', 'metric', 'value', 'target', ''], summary)}\n`);
  process.stdout.write(`${failed ? 'RESULT: FAILED' : 'RESULT: OK'} (targets are informational: a MISS does not fail the run)\n`);

  const json = {
    when: new Date().toISOString(),
    node: process.version,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? null,
    loadAverage1m: { before: Number(loadBefore.toFixed(2)), after: Number(loadavg()[0]!.toFixed(2)) },
    ok: !failed,
    sections: Object.fromEntries(results.map((result) => [result.name, { ...result.figures, failures: result.failures }])),
    crashed,
  };
  process.stdout.write(`BENCH_JSON ${JSON.stringify(json)}\n`);
  if (stopping) return 130;
  return failed ? 1 : 0;
}

function machine(): string {
  return `${availableParallelism()} CPU(s), ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}`;
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    process.exitCode = 130;
    log(`${signal}: stopping child processes and removing temp dirs`);
    runPendingCleanups().finally(() => process.exit(130));
  });
}

main().then(
  async (code) => {
    await runPendingCleanups();
    if (stopping) await new Promise(() => {}); // the signal handler exits once its clean-up is done
    process.exit(code);
  },
  async (error: unknown) => {
    log(`bench crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await runPendingCleanups();
    process.exit(1);
  },
);
