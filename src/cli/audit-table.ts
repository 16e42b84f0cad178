import { parseDuration } from '@tessera-broker/sdk';
import type { ReviewEvent } from '../review/reader.js';
import { table } from './table.js';

/** Audit events as a plain-text table; identities by address where the broker knows one. */
export function eventTable(events: readonly ReviewEvent[]): string {
  return table(
    ['seq', 'at', 'action', 'outcome', 'actor', 'identity', 'reason'],
    events.map((event) => [
      String(event.seq),
      event.at,
      event.action,
      event.outcome,
      event.actor_address ?? event.actor ?? '-',
      event.identity_address ?? event.identity_id ?? '-',
      event.reason ?? '',
    ]),
    '(no events)',
  );
}

/** `--since 1h` means an hour ago; anything else is passed on as an RFC 3339 time for the broker to check. */
export function pointInTime(text: string): string {
  const ago = parseDuration(text);
  return ago === undefined ? text : new Date(Date.now() - ago).toISOString();
}
