import type { Kysely } from 'kysely';
import { sqliteIfIdle } from '../store/database.js';
import type { Precompiled } from '../store/precompiled.js';
import type { Database } from '../store/schema.js';
import type { AuditEvent, AuditSink } from './audit-log.js';

/**
 * Runs `update` (a precompiled UPDATE of one row) and, if it changed that row, appends `event` in
 * the same transaction; returns whether it did. On an idle SQLite writer, with a sink that appends
 * synchronously, the transaction runs synchronously: it holds the write lock for its statements
 * only, not across event-loop turns during which every other request's write would queue.
 */
export async function auditedUpdate(db: Kysely<Database>, audit: AuditSink, update: Precompiled<unknown>, parameters: unknown[], event: AuditEvent): Promise<boolean> {
  const sqlite = audit.appendSync && sqliteIfIdle(db);
  if (sqlite) {
    return sqlite.transaction(() => {
      if (sqlite.prepare(update.sql(db)).run(parameters).changes !== 1) return false;
      audit.appendSync!(event, db, sqlite);
      return true;
    });
  }
  return db.transaction().execute(async (trx) => {
    if ((await update(trx, parameters)).numAffectedRows !== 1n) return false;
    await audit.append(event, trx);
    return true;
  });
}
