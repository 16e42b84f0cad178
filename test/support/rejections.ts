import type { TestBroker } from './broker.js';

export interface Counted {
  readonly source: string;
  readonly action: string;
  readonly reason: string;
  count: number;
  readonly sample: Record<string, unknown>;
}

/** The seq of the newest audit event, after writing what the rejection summary holds: a mark to count from. */
export async function rejectionMark(env: TestBroker): Promise<number> {
  await env.broker.rejections.flush();
  const { events } = await env.admin.request<{ events: { seq: number }[] }>('GET', '/v1/admin/audit?order=desc&limit=1');
  return events[0]?.seq ?? 0;
}

/**
 * The anonymous rejections counted after `mark`: the summary events written since, their counts
 * merged per (source, action, reason) with the first sample, since the broker's own timer may have
 * split them over two windows.
 */
export async function rejectionsSince(env: TestBroker, mark: number): Promise<{ summaries: number; counts: Counted[] }> {
  await env.broker.rejections.flush();
  const { events } = await env.admin.request<{ events: { details: { counts: Counted[] } }[] }>('GET', `/v1/admin/audit?action=request.rejected.summary&after=${mark}&limit=1000`);
  const merged = new Map<string, Counted>();
  for (const entry of events.flatMap((event) => event.details.counts)) {
    const key = `${entry.source} ${entry.action} ${entry.reason}`;
    const seen = merged.get(key);
    if (seen) seen.count += entry.count;
    else merged.set(key, { source: entry.source, action: entry.action, reason: entry.reason, count: entry.count, sample: entry.sample });
  }
  return { summaries: events.length, counts: [...merged.values()] };
}
