import type { JSONWebKeySet } from 'jose';
import type { AuditEventTable } from '../store/schema.js';
import type { HashedEvent } from './chain.js';
import type { StoredCheckpoint } from './checkpoints.js';

export const EXPORT_FORMAT = 'tessera-audit-export/1';

/**
 * The export (docs/PROTOCOL.md §7.4), one JSON object per line: a header, the identity keys and
 * session certificates proofs are checked against, then events in seq order, each checkpoint right after the event it signs.
 * The verifier reads the same records from a file, an HTTP stream or the database.
 */
export interface HeaderRecord {
  readonly type: 'header';
  readonly format: typeof EXPORT_FORMAT;
  readonly issuer: string;
  readonly exported_at: number;
  /** first and last seq exported */
  readonly from: number;
  readonly to: number;
  /** the chain-head row when the export began: the log must end there when `to` reaches it */
  readonly head: { readonly seq: number; readonly hash: string };
  /** the broker's published keys; a verifier should prefer a copy it fetched itself */
  readonly jwks: JSONWebKeySet;
}

export interface IdentityRecord {
  readonly type: 'identity';
  readonly identity_id: string;
  /**
   * base64url raw Ed25519 public key. Its RFC 7638 thumbprint (the `kid` of proofs it signed) equals
   * identity_id for the identity's first key; a key rotated in later (identity.key_rotated) has its own.
   */
  readonly public_key: string;
}

/** A session certificate (docs/PROTOCOL.md §3.1): proofs whose kid is its session id are checked with its key. */
export interface SessionRecord {
  readonly type: 'session';
  readonly session_id: string;
  readonly identity_id: string;
  /** the compact JWS the identity's primary key signed; it must verify under the identity record's key */
  readonly certificate: string;
}

export type EventRecord = { readonly type: 'event' } & HashedEvent;
export type CheckpointRecord = { readonly type: 'checkpoint' } & StoredCheckpoint;

export type ExportRecord = HeaderRecord | IdentityRecord | SessionRecord | EventRecord | CheckpointRecord;

/** An audit_events row (details as JSON text) -> the event record whose hash it claims. One object: this runs per event. */
export function eventRecordFromRow(row: AuditEventTable): EventRecord {
  return {
    type: 'event',
    seq: row.seq,
    at: row.at,
    actor: row.actor,
    action: row.action,
    outcome: row.outcome,
    identity_id: row.identity_id,
    reason: row.reason,
    details: JSON.parse(row.details) as Record<string, unknown>,
    proof: row.proof,
    prev_hash: row.prev_hash,
    hash: row.hash,
  };
}
