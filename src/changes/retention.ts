import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';

/**
 * How long change rows are kept. A replica only needs the rows since its last read, which is
 * within the staleness bound (seconds); one that was stale for longer clears its caches instead.
 */
export const CHANGE_RETENTION_MS = 10 * 60_000;

/** Deletes change rows older than the retention (by the database clock, which wrote `at`). */
export async function pruneChanges(db: Kysely<Database>, now: number): Promise<void> {
  await db.deleteFrom('changes').where('at', '<', now - CHANGE_RETENTION_MS).execute();
}
