import type { AuditFilter } from '../store/repositories/audit.js';
import type { Repositories } from '../store/repositories/index.js';
import { eventRecordFromRow } from './records.js';

export type { AuditFilter };

/** A page of audit events in seq order, as the admin API shows them (times as RFC 3339). */
export async function listAuditEvents(repos: Pick<Repositories, 'audit'>, filter: AuditFilter) {
  const rows = await repos.audit.list(filter);
  return rows.map((row) => {
    const { type: _type, ...event } = eventRecordFromRow(row);
    return { ...event, at: new Date(event.at).toISOString() };
  });
}

export type ListedAuditEvent = Awaited<ReturnType<typeof listAuditEvents>>[number];
