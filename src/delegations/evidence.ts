import { sha256Base64url } from '../crypto/encoding.js';
import { PROOF_MAX_SKEW_SECONDS, type ProofClaims } from '../identity/proof.js';

/**
 * The evidence of an agent's delegation: the proof it signed for `POST /v1/delegations` and the
 * exact body that proof's `bh` covers, stored on the delegation and in its `delegation.created`
 * audit event (as `request_body`). Offline, with only the delegator's public key, `tessera audit
 * verify` checks that the delegator signed a request for exactly the delegation recorded
 * (docs/PROTOCOL.md §12.5).
 */
export interface DelegationEventDetails {
  readonly delegatee?: unknown;
  readonly backend?: unknown;
  readonly role?: unknown;
  readonly constraints?: unknown;
  readonly purpose?: unknown;
  readonly parent_id?: unknown;
  readonly expires_at?: unknown;
  readonly request_body?: unknown;
}

/** Why the recorded delegation is not what the delegator's signed request asked for, or null. */
export function delegationEvidenceProblem(details: DelegationEventDetails, claims: ProofClaims): string | null {
  const body = details.request_body;
  if (typeof body !== 'string') return 'it carries no request body';
  if (sha256Base64url(body) !== claims.bh) return "the request body is not the one the proof's bh covers";
  if (claims.htm !== 'POST' || !claims.htu.endsWith('/v1/delegations')) return 'the proof is not for POST /v1/delegations';
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return 'the request body is not JSON';
  }
  for (const field of ['delegatee', 'backend', 'role', 'purpose'] as const) {
    if (request[field] !== details[field]) return `the recorded ${field} is not the one requested`;
  }
  if (request.parent !== undefined && request.parent !== details.parent_id) return 'the recorded parent is not the one requested';
  // Constraints the request names are recorded as they are; those it leaves out are inherited.
  const recorded = (details.constraints ?? {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries((request.constraints ?? {}) as Record<string, unknown>)) {
    if (recorded[name] !== value) return `the recorded constraint ${name} is not the one requested`;
  }
  const ttlSeconds = request.ttl_seconds;
  if (typeof ttlSeconds !== 'number' || typeof details.expires_at !== 'number') return 'the expiry cannot be checked';
  if (details.expires_at > (claims.iat + PROOF_MAX_SKEW_SECONDS + ttlSeconds) * 1000) return 'the recorded expiry is later than the requested TTL allows';
  return null;
}
