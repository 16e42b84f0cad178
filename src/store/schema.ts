import type { Generated } from 'kysely';

/**
 * Table types shared by every dialect. Times are epoch milliseconds (bigint in PostgreSQL,
 * integer in SQLite) so both dialects compare and index them the same way; JSON is stored as text.
 */
export interface IdentityTable {
  id: string;
  address: string;
  role: 'agent' | 'admin' | 'reviewer';
  status: 'pending' | 'active' | 'revoked';
  /** base64url raw Ed25519 public key */
  public_key: string;
  key_uri: string;
  attributes: string;
  created_at: number;
  created_by: string | null;
  enrolled_at: number | null;
  revoked_at: number | null;
  revoked_by: string | null;
  revocation_reason: string | null;
}

export interface EnrollmentTicketTable {
  /** SHA-256 of the ticket, base64url; the ticket itself is never stored. */
  ticket_hash: string;
  identity_id: string;
  issued_at: number;
  issued_by: string;
  expires_at: number;
  redeemed_at: number | null;
}

export interface ProofReplayTable {
  jti: string;
  identity_id: string;
  /** After this the proof's iat is outside the acceptance window anyway, so the row can go. */
  expires_at: number;
}

export interface AuditEventTable {
  seq: Generated<number>;
  at: number;
  /** identity id of whoever caused the event; null for anonymous requests */
  actor: string | null;
  action: string;
  outcome: 'success' | 'denied' | 'failure';
  /** identity the event is about */
  identity_id: string | null;
  reason: string | null;
  /** JSON object: never holds a secret, only hashes */
  details: string;
}

export interface SettingTable {
  key: string;
  value: string;
}

export interface Database {
  identities: IdentityTable;
  enrollment_tickets: EnrollmentTicketTable;
  proof_replays: ProofReplayTable;
  audit_events: AuditEventTable;
  settings: SettingTable;
}
