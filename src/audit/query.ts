import { sql } from 'kysely';
import type { SqlDialect, Store } from '../store/database.js';
import type { AuditOutcome } from './audit-log.js';
import { eventRecordFromRow } from './records.js';

export interface AuditFilter {
  /** events about this identity id */
  readonly identityId?: string;
  /** events caused by this identity id */
  readonly actor?: string;
  readonly action?: string;
  readonly outcome?: AuditOutcome;
  /** events about this lease (`details.lease_id`) */
  readonly lease?: string;
  /** events about this backend (`details.backend`) */
  readonly backend?: string;
  /** events whose delegation chain acts for this subject (`details.act.sub`: a user's sub, or the root agent's address) */
  readonly onBehalfOf?: string;
  /** seq strictly greater than this: the cursor for the next page in ascending order */
  readonly after?: number;
  /** seq strictly less than this: the cursor for the next page in descending order */
  readonly before?: number;
  /** epoch ms bounds on `at`, inclusive */
  readonly since?: number;
  readonly until?: number;
  /** seq order; default ascending */
  readonly order?: 'asc' | 'desc';
  readonly limit: number;
}

/** A member of the `details` JSON text (a path of keys), as SQL text (each dialect has its own JSON functions). */
function detailsField(dialect: SqlDialect, ...path: ['lease_id'] | ['backend'] | ['act', 'sub']) {
  return dialect === 'postgres' ? sql<string>`(details::jsonb #>> ${`{${path.join(',')}}`})` : sql<string>`json_extract(details, ${`$.${path.join('.')}`})`;
}

/** A page of audit events in seq order, as the admin API shows them (times as RFC 3339). */
export async function listAuditEvents({ db, dialect }: Pick<Store, 'db' | 'dialect'>, filter: AuditFilter) {
  let query = db
    .selectFrom('audit_events')
    .selectAll()
    .orderBy('seq', filter.order ?? 'asc')
    .limit(filter.limit);
  if (filter.identityId !== undefined) query = query.where('identity_id', '=', filter.identityId);
  if (filter.actor !== undefined) query = query.where('actor', '=', filter.actor);
  if (filter.action !== undefined) query = query.where('action', '=', filter.action);
  if (filter.outcome !== undefined) query = query.where('outcome', '=', filter.outcome);
  if (filter.lease !== undefined) query = query.where(detailsField(dialect, 'lease_id'), '=', filter.lease);
  if (filter.backend !== undefined) query = query.where(detailsField(dialect, 'backend'), '=', filter.backend);
  if (filter.onBehalfOf !== undefined) query = query.where(detailsField(dialect, 'act', 'sub'), '=', filter.onBehalfOf);
  if (filter.after !== undefined) query = query.where('seq', '>', filter.after);
  if (filter.before !== undefined) query = query.where('seq', '<', filter.before);
  if (filter.since !== undefined) query = query.where('at', '>=', filter.since);
  if (filter.until !== undefined) query = query.where('at', '<=', filter.until);
  const rows = await query.execute();
  return rows.map((row) => {
    const { type: _type, ...event } = eventRecordFromRow(row);
    return { ...event, at: new Date(event.at).toISOString() };
  });
}

export type ListedAuditEvent = Awaited<ReturnType<typeof listAuditEvents>>[number];
