/**
 * Every error Tessera reports carries a stable code. The table below is the single source of
 * truth for codes, HTTP statuses and default messages; docs/PROTOCOL.md documents the same table
 * for clients, and a test keeps the two in step.
 */
export const ERROR_CODES = {
  // Request shape
  invalid_request: { status: 400, message: 'The request is malformed or fails validation.' },
  not_found: { status: 404, message: 'No such resource.' },
  conflict: { status: 409, message: 'The resource already exists.' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  request_incomplete: { status: 408, message: 'The request body did not arrive whole: the client stopped sending or the body timeout cut it.' },
  rate_limited: { status: 429, message: 'Too many failed attempts from this client; retry after the Retry-After seconds.' },

  // Proof authentication (401: who you are could not be established)
  proof_missing: { status: 401, message: 'The request carries no "Authorization: Proof" header.' },
  proof_malformed: { status: 401, message: 'The proof is not a well-formed compact JWS with the required header and claims.' },
  proof_bad_signature: { status: 401, message: 'The proof signature does not verify under the identity key.' },
  proof_unknown_key: { status: 401, message: 'The proof names a key id (kid) the broker does not know.' },
  proof_stale: { status: 401, message: 'The proof iat is more than 60 seconds away from the broker clock.' },
  proof_wrong_audience: { status: 401, message: 'The proof aud is not this broker\'s audience.' },
  proof_wrong_method: { status: 401, message: 'The proof htm does not match the request method.' },
  proof_wrong_url: { status: 401, message: 'The proof htu does not match the request URL.' },
  proof_wrong_body: { status: 401, message: 'The proof bh does not match the SHA-256 of the request body.' },
  proof_replayed: { status: 401, message: 'The proof jti has already been used.' },
  key_retired: { status: 401, message: 'The proof is signed by a key the identity rotated away from, after its grace period ended.' },

  // Session keys (docs/PROTOCOL.md §3.1): a proof signed by a session key that cannot be accepted
  session_unknown: { status: 401, message: 'The proof names a session (kid) the broker does not know.' },
  session_expired: { status: 401, message: 'The session has expired; register a new one with the primary key.' },
  session_revoked: { status: 401, message: 'The session has been ended (its identity was revoked or suspended).' },
  session_certificate_invalid: { status: 400, message: 'The session certificate is malformed, not signed by the identity key, or its lifetime is not allowed.' },

  // Review sessions (the read-only review page, docs/PROTOCOL.md §9)
  session_invalid: { status: 401, message: 'The review session or login code is missing, unknown, expired or already used.' },

  // Identity state (403: who you are is known, but you may not)
  identity_not_enrolled: { status: 403, message: 'The identity has not redeemed its enrollment ticket.' },
  identity_revoked: { status: 403, message: 'The identity has been revoked.' },
  identity_suspended: { status: 403, message: 'The identity is suspended (a cloned agent was suspected); an admin must reinstate or revoke it.' },
  forbidden: { status: 403, message: 'The identity is not allowed to perform this operation.' },

  // Enrollment tickets
  ticket_invalid: { status: 403, message: 'The enrollment ticket is unknown or bound to another identity.' },
  ticket_expired: { status: 403, message: 'The enrollment ticket has expired.' },
  ticket_used: { status: 403, message: 'The enrollment ticket has already been redeemed.' },

  // Leases and credential backends
  no_grant: { status: 403, message: 'No grant allows this identity to lease this role of this backend.' },
  role_cannot_lease: { status: 403, message: 'Only agent identities may lease credentials; admin and reviewer identities may not.' },
  ttl_exceeds_max: { status: 400, message: 'The requested TTL exceeds the maximum the grant allows.' },
  lease_inactive: { status: 409, message: 'The lease is no longer active (revoked or expired).' },
  backend_unreachable: { status: 400, message: 'The broker could not connect to the backend with the given settings.' },
  backend_privilege_missing: { status: 400, message: 'The backend\'s admin credentials lack a privilege leases need; the message names it and the GRANT that fixes it.' },
  backend_unavailable: { status: 503, message: 'The upstream backend is unavailable; try again later.' },
  backend_error: { status: 502, message: 'The upstream backend rejected the operation.' },

  // Delegations (docs/PROTOCOL.md §12): authority handed on only narrows
  delegation_scope_wider: { status: 403, message: 'The delegation (or the lease asked under it) is wider than the delegator\'s own authority: another backend or role, or looser constraints.' },
  delegation_expiry_later: { status: 403, message: 'The delegation would outlive the delegation it is made under.' },
  delegation_depth_exceeded: { status: 403, message: 'The chain would be deeper than the broker allows (TESSERA_DELEGATION_MAX_DEPTH).' },
  delegation_expired: { status: 403, message: 'A delegation in the chain has expired.' },
  delegation_revoked: { status: 403, message: 'A delegation in the chain, or an identity in it, has been revoked.' },
  delegation_authority_lost: { status: 403, message: 'A delegator in the chain no longer holds the grant or delegation it delegated from.' },
  delegation_ambiguous: { status: 409, message: 'Several delegations apply to this lease request and the caller holds no grant of its own: name one with `delegation`.' },
  delegatee_invalid: { status: 400, message: 'The delegatee must be another enrolled, active agent identity.' },

  // Credential proxy (answered in the upstream API's own error format, docs/PROTOCOL.md §6)
  lease_token_invalid: { status: 401, message: 'The proxied request carries no lease token, or one the broker does not know.' },
  lease_token_inactive: { status: 401, message: 'The lease behind this token has been revoked or has expired.' },
  scope_violation: { status: 403, message: 'The request is outside the scope the lease was granted.' },
  constraint_violation: { status: 403, message: 'The request breaks a constraint of the lease\'s grant.' },

  // User assertions (a user's token from a trusted issuer, docs/PROTOCOL.md §13). 403, not 401: the
  // caller's own proof was good; what fails is the user token in the body.
  user_token_invalid: { status: 403, message: 'The user token is malformed, too large, signed with a disallowed algorithm or an unknown key, or fails the issuer profile (aud, nbf, iat, required claims).' },
  user_token_expired: { status: 403, message: 'The user token has expired.' },
  issuer_unknown: { status: 403, message: 'The user token\'s issuer (iss) is not a trusted issuer of this broker.' },
  user_claim_required: { status: 403, message: 'The grant requires acting for a user with certain claims: lease through a user delegation whose user carries them.' },
  issuer_keys_unavailable: { status: 503, message: 'The broker could not fetch the trusted issuer\'s keys (JWKS); try again later.' },

  // Key stores and configuration
  key_store_error: { status: 502, message: 'The key store (KMS/HSM) failed to complete the operation.' },
  key_not_found: { status: 404, message: 'The key store has no such key.' },
  config_invalid: { status: 500, message: 'The configuration is invalid.' },

  // Replicas (several brokers on one PostgreSQL database, README "Scale-out")
  replica_stale: { status: 503, message: 'This replica cannot confirm it has seen every recent change (revocations included); try again or another replica.' },
  internal: { status: 500, message: 'Internal error.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** `rate_limited`: when the client may try again; sent as Retry-After. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message ?? ERROR_CODES[code].message, options);
    this.name = 'TesseraError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

export function isTesseraError(error: unknown, code?: ErrorCode): error is TesseraError {
  return error instanceof TesseraError && (code === undefined || error.code === code);
}
