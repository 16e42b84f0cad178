/**
 * Bench-only broker process: `tessera serve`, unchanged, except that the audit sink's append() can
 * be swapped for a no-op at run time (append() and appendSync()), to measure what the audit (hash chain + stored proof) adds to
 * an operation, side by side in one process. Never part of the product: the broker itself has no
 * switch that turns auditing off (every grant is audited).
 *
 * SIGUSR2 toggles between the real sink and the no-op one (it starts real). `{ toggles, noop,
 * appends, appendMs, reports }` goes to $BENCH_AUDIT_STATS on every toggle and when asked with
 * SIGWINCH (SIGUSR1 would start Node's inspector): real appends so far and the wall time spent in
 * them (under concurrency that includes other requests' turns). Only when asked, so that the
 * harness takes no CPU from the broker it measures.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { DatabaseAuditLog } from '../src/audit/audit-log.js';

const statsPath = process.env.BENCH_AUDIT_STATS;
if (!statsPath) throw new Error('BENCH_AUDIT_STATS must name the stats file');

const realAppend = DatabaseAuditLog.prototype.append;
const stats = { toggles: 0, noop: false, appends: 0, appendMs: 0, reports: 0 };
DatabaseAuditLog.prototype.append = async function append(this: DatabaseAuditLog, ...args: Parameters<DatabaseAuditLog['append']>): Promise<void> {
  if (stats.noop) return;
  const start = performance.now();
  try {
    await realAppend.apply(this, args);
  } finally {
    stats.appends += 1;
    stats.appendMs += performance.now() - start;
  }
};
const realAppendSync = DatabaseAuditLog.prototype.appendSync;
DatabaseAuditLog.prototype.appendSync = function appendSync(this: DatabaseAuditLog, ...args: Parameters<DatabaseAuditLog['appendSync']>): void {
  if (stats.noop) return;
  const start = performance.now();
  try {
    realAppendSync.apply(this, args);
  } finally {
    stats.appends += 1;
    stats.appendMs += performance.now() - start;
  }
};
// Written aside and renamed into place: the bench never reads a half-written file.
const writeStats = () => {
  stats.reports += 1;
  writeFileSync(`${statsPath}.tmp`, JSON.stringify(stats));
  renameSync(`${statsPath}.tmp`, statsPath);
};
writeStats();
process.on('SIGWINCH', writeStats);
process.on('SIGUSR2', () => {
  stats.noop = !stats.noop;
  stats.toggles += 1;
  writeStats();
});

process.argv = [process.argv[0]!, process.argv[1]!, 'serve'];
await import('../src/cli/main.js');
