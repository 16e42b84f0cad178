import type { ChangeRepository } from '../store/repositories/changes.js';

/**
 * How long change rows are kept. A replica only needs the rows since its last read, which is
 * within the staleness bound (seconds); one that was stale for longer clears its caches instead.
 */
export const CHANGE_RETENTION_MS = 10 * 60_000;

/** Deletes change rows older than the retention (by the database clock, which wrote `at`). */
export async function pruneChanges(changes: ChangeRepository, now: number): Promise<void> {
  await changes.pruneBefore(now - CHANGE_RETENTION_MS);
}
