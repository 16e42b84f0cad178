import type { Kysely } from 'kysely';
import { sqliteIfIdle } from '../store/database.js';
import { repositoriesOn } from '../store/repositories/index.js';
import type { Precompiled } from '../store/precompiled.js';
import type { Database } from '../store/schema.js';
import type { AuditEvent, AuditSink } from './audit-log.js';

/** A precompiled UPDATE of one row, and the event that records it. */
export interface AuditedChange {
  readonly parameters: unknown[];
  readonly event: AuditEvent;
}

/**
 * Runs `update` (a precompiled UPDATE of one row) and, if it changed that row, appends `event` in
 * the same transaction; returns whether it did.
 */
export async function auditedUpdate(db: Kysely<Database>, audit: AuditSink, update: Precompiled<unknown>, parameters: unknown[], event: AuditEvent): Promise<boolean> {
  return (await auditedUpdates(db, audit, update, [{ parameters, event }]))[0]!;
}

/**
 * auditedUpdate() for several rows in one transaction, all or nothing: one commit for all of them.
 * Returns, per change, whether it changed its row. On an idle SQLite writer, with a sink that
 * appends synchronously, the transaction runs synchronously: it holds the write lock for its
 * statements only, not across event-loop turns during which every other request's write would queue.
 */
export async function auditedUpdates(db: Kysely<Database>, audit: AuditSink, update: Precompiled<unknown>, changes: readonly AuditedChange[]): Promise<boolean[]> {
  const sqlite = audit.appendSync && sqliteIfIdle(db);
  if (sqlite) {
    const statement = sqlite.prepare(update.sql(db));
    const repos = repositoriesOn(db);
    return sqlite.transaction(() =>
      changes.map(({ parameters, event }) => {
        if (statement.run(parameters).changes !== 1) return false;
        audit.appendSync!(event, repos);
        return true;
      }),
    );
  }
  return db.transaction().execute(async (trx) => {
    const changed: boolean[] = [];
    for (const { parameters, event } of changes) {
      const updated = (await update(trx, parameters)).numAffectedRows === 1n;
      if (updated) await audit.append(event, repositoriesOn(trx));
      changed.push(updated);
    }
    return changed;
  });
}
