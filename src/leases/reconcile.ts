import type { LeaseRevoker, RevocationCounts } from './revoker.js';
import { SYSTEM_REASONS } from './revoker.js';

/**
 * A pending lease is an intent whose issue never finished: the broker died (or lost its database)
 * between recording it and activating it. Its credential may exist upstream with nobody holding
 * it, so it is revoked (idempotently; usually there is nothing to drop) and marked revoked.
 */
export function reconcilePendingLeases(revoker: LeaseRevoker, issuedBefore: number): Promise<RevocationCounts> {
  return revoker.drain({ kind: 'stale-pending', issuedBefore }, { actor: null, reason: SYSTEM_REASONS.reconciled });
}

/**
 * The cut-off at start. An embedded (SQLite) broker is the database's only user, so every pending
 * lease predates this process. On a shared PostgreSQL store another broker may be mid-issue, so
 * only intents older than `graceMs` (longer than any issue can take) are orphans.
 */
export function startupCutoff(dialect: 'sqlite' | 'postgres', now: number, graceMs: number): number {
  return dialect === 'sqlite' ? now + 1 : now - graceMs;
}
