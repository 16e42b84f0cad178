import { sql } from 'kysely';
import type { Store } from './database.js';
import { type Repositories, repositoriesOn } from './repositories/index.js';

/** Work that must run on one broker at a time when several share a database. */
export type ExclusiveJob = 'audit-checkpoint' | 'prune';

/** The advisory-lock keys: (namespace, job). The namespace keeps clear of other applications' locks. */
const NAMESPACE = 0x7e55e4a;
const JOB_KEYS: Record<ExclusiveJob, number> = { 'audit-checkpoint': 1, prune: 2 };

/**
 * Runs `work` unless another broker is running the same job right now (then undefined). On
 * PostgreSQL a transaction-scoped advisory lock decides, so it is released when the work ends or
 * the broker dies with it (its connection closes); `work` gets repositories on that same
 * transaction, so a job holds one pool connection, not two. An embedded store has one process: no lock.
 */
export async function runExclusive<T>(store: Pick<Store, 'db' | 'dialect' | 'repos'>, job: ExclusiveJob, work: (repos: Repositories) => Promise<T>): Promise<T | undefined> {
  if (store.dialect === 'sqlite') return work(store.repos);
  return store.db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ locked: boolean }>`SELECT pg_try_advisory_xact_lock(${sql.lit(NAMESPACE)}, ${sql.lit(JOB_KEYS[job])}) AS locked`.execute(trx);
    return rows[0]!.locked ? work(repositoriesOn(trx)) : undefined;
  });
}
