import type { Generated } from 'kysely';

/**
 * Table types shared by every dialect. Times are epoch milliseconds (bigint in PostgreSQL,
 * integer in SQLite) so both dialects compare and index them the same way; JSON is stored as text.
 */
export interface IdentityTable {
  id: string;
  address: string;
  role: 'agent' | 'admin' | 'reviewer';
  /** suspended: a cloned agent was suspected (src/sessions/); refused like revoked until an admin reinstates it */
  status: 'pending' | 'active' | 'suspended' | 'revoked';
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
  /** 1, 2, 3, ... without gaps: assigned from audit_chain_head, not by the database */
  seq: number;
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
  /** compact JWS the actor signed for the request that caused the event (src/audit/request-proof.ts) */
  proof: string | null;
  /** hash of the event seq - 1; GENESIS_HASH for seq 1 (src/audit/chain.ts) */
  prev_hash: string;
  /** hex SHA-256 of the event's canonical encoding (docs/PROTOCOL.md §7) */
  hash: string;
}

/** One row (id 1): the last appended event. Appenders update it first, which serialises them. */
export interface AuditChainHeadTable {
  id: number;
  seq: number;
  hash: string;
}

/** The chain head {seq, hash, at} signed by the authority key, as a compact JWS. */
export interface AuditCheckpointTable {
  seq: number;
  hash: string;
  at: number;
  jws: string;
}

export interface SettingTable {
  key: string;
  value: string;
}

export interface BackendTable {
  name: string;
  type: string;
  /** JSON object of type-specific settings; never holds the root secret. */
  config: string;
  /** AES-256-GCM ciphertext of the root secret under its own data key (src/secrets/envelope.ts). */
  sealed_secret: string;
  /** That data key, wrapped by the key store key named in wrapping_key_uri. */
  wrapped_key: string;
  wrapping_key_uri: string;
  created_at: number;
  created_by: string | null;
}

export interface GrantTable {
  id: string;
  /** An identity address, or `attr:<key>=<value>` for every identity carrying that attribute. */
  subject: string;
  backend: string;
  role: string;
  max_ttl_ms: number;
  default_ttl_ms: number;
  /** JSON object of scope constraints (e.g. {"max_amount":"5000"}), checked by the credential proxy. */
  constraints: Generated<string>;
  /** JSON object claim -> value: leases must act for a user (a user-rooted chain) carrying these claims (src/trust/user-claims.ts) */
  required_user_claims: Generated<string>;
  created_at: number;
  created_by: string | null;
}

export type LeaseState = 'pending' | 'active' | 'expired' | 'revoked' | 'revocation-pending';

export interface LeaseTable {
  id: string;
  identity_id: string;
  backend: string;
  role: string;
  grant_id: string;
  state: LeaseState;
  /** JSON RevocationHandle from the backend's plan(): what revoke() needs, never a secret. */
  revocation: string;
  issued_at: number;
  expires_at: number;
  max_expires_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
  revocation_reason: string | null;
  attempts: Generated<number>;
  /** When the next revocation attempt is due; also how long a claimed revocation is reserved. */
  next_attempt_at: number | null;
  last_error: string | null;
  /** Proxied leases: SHA-256 (base64url) of the lease token; the token itself is never stored. */
  token_hash: Generated<string | null>;
  /** The grant's constraints when the lease was issued (JSON object): a lease keeps its scope. */
  constraints: Generated<string>;
  /** The delegation the lease was issued under (src/delegations/); null for a lease under the caller's own grant. */
  delegation_id: Generated<string | null>;
  /** JSON RFC 8693 `act` chain {sub, act: {...}} of a delegated lease (docs/PROTOCOL.md §12); null otherwise. */
  act: Generated<string | null>;
}

/** A one-time review login code and, once redeemed, the browser session it became (src/review/sessions.ts). */
export interface ReviewSessionTable {
  /** SHA-256 (base64url) of the login code */
  code_hash: string;
  /** the reviewer or admin it was issued to */
  identity_id: string;
  created_at: number;
  code_expires_at: number;
  /** SHA-256 (base64url) of the session cookie's token; null until the code is redeemed */
  token_hash: string | null;
  expires_at: number | null;
}

/** A session key an identity's primary key certified (src/sessions/, docs/PROTOCOL.md §3.1). Kept after expiry: audit verify needs the certificate. */
export interface SessionTable {
  /** `ses_` + RFC 7638 thumbprint of the session public key: the `kid` of its proofs */
  id: string;
  identity_id: string;
  /** the primary key that signed the certificate (its RFC 7638 thumbprint) */
  key_id: string;
  generation: number;
  /** base64url raw Ed25519 session public key (cnf.jwk.x) */
  public_key: string;
  /** the compact JWS the primary key signed */
  certificate: string;
  issued_at: number;
  expires_at: number;
  created_at: number;
  /** set when the identity is revoked or suspended: the session ends for good */
  revoked_at: number | null;
}

export type ChangeKind = 'identity' | 'session' | 'backend' | 'broker_key' | 'grant';

/**
 * The change feed (src/changes/): a row per changed identity, session, backend or grant, written by triggers in
 * the changing transaction (migrations 0006, 0007, 0011, 0013). Replicas read it to invalidate caches.
 */
export interface ChangeTable {
  /** ascending; on PostgreSQL in assignment order, which concurrent transactions may commit out of */
  id: Generated<number>;
  /** PostgreSQL only: the writing transaction (xid8, as text), to read committed rows exactly once */
  tx: Generated<string>;
  /** epoch ms by the database clock, for pruning */
  at: Generated<number>;
  kind: ChangeKind;
  /** the changed row's id (a backend's name) */
  key: string;
}

/** Every key an identity has had (migration 0008): the current one has no not_after. */
export interface IdentityKeyTable {
  /** RFC 7638 thumbprint: the `kid` of the proofs it signs */
  key_id: string;
  identity_id: string;
  /** base64url raw Ed25519 public key */
  public_key: string;
  key_uri: string;
  created_at: number;
  /** end of the grace period of a superseded key: proofs it signs after this are refused */
  not_after: number | null;
  /** when the broker audited the key's retirement */
  retired_at: number | null;
}

export type BrokerKeyPurpose = 'authority' | 'wrapping';

/** A superseded broker key (the current ones are in settings): authority keys stay in JWKS until not_after. */
export interface BrokerKeyTable {
  uri: string;
  purpose: BrokerKeyPurpose;
  /** authority keys: RFC 7638 thumbprint and base64url public key; null for wrapping keys */
  kid: string | null;
  public_key: string | null;
  created_at: number;
  not_after: number;
  retired_at: number | null;
}

/** One link of a delegation chain (src/delegations/, migration 0009). */
export interface DelegationTable {
  id: string;
  parent_id: string | null;
  root_kind: 'agent' | 'user';
  /** null when the delegator is a user */
  delegator_identity_id: string | null;
  /** JSON {iss, sub, claims} of a user delegator; null for an agent delegator */
  delegator_user: string | null;
  delegatee_identity_id: string;
  backend: string;
  role: string;
  /** JSON object of scope constraints, at least as tight as the delegator's */
  constraints: string;
  purpose: string;
  /** 1: straight from the delegator's own authority (grant or user); parent's depth + 1 below */
  depth: number;
  expires_at: number;
  created_at: number;
  status: 'active' | 'revoked';
  revoked_at: number | null;
  revoked_by: string | null;
  revoked_reason: string | null;
  /** JSON: the delegator's signed request (src/delegations/evidence.ts) */
  evidence: string;
}

/** A trusted OpenID Connect / JWT issuer (src/trust/): whose user tokens are accepted, and how strictly. */
export interface TrustedIssuerTable {
  /** the exact `iss` its tokens carry */
  issuer: string;
  /** the exact `aud` a token must name (this broker's audience at that issuer) */
  audience: string;
  /** JSON array, a subset of EdDSA, ES256, RS256 */
  algorithms: string;
  /** where its JWKS is fetched; null when `jwks` is set */
  jwks_url: string | null;
  /** a static JWKS (JSON), from `--jwks-file`; null when `jwks_url` is set */
  jwks: string | null;
  /** JSON object claim -> value a token must carry to be accepted at all */
  required_claims: Generated<string>;
  created_at: number;
  created_by: string | null;
}

export interface Database {
  identities: IdentityTable;
  enrollment_tickets: EnrollmentTicketTable;
  proof_replays: ProofReplayTable;
  audit_events: AuditEventTable;
  audit_chain_head: AuditChainHeadTable;
  audit_checkpoints: AuditCheckpointTable;
  settings: SettingTable;
  backends: BackendTable;
  grants: GrantTable;
  leases: LeaseTable;
  review_sessions: ReviewSessionTable;
  changes: ChangeTable;
  identity_keys: IdentityKeyTable;
  broker_keys: BrokerKeyTable;
  sessions: SessionTable;
  delegations: DelegationTable;
  trusted_issuers: TrustedIssuerTable;
}
