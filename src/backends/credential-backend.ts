/**
 * The credential-backend seam. A backend mints short-lived credentials upstream (a PostgreSQL role,
 * an API key) from a long-lived root secret that never leaves the broker.
 *
 * Crash safety drives the shape: the broker first asks the backend to plan() a credential — choosing
 * every name up front — and records that plan as the lease intent; only then does it mint(). Because
 * the plan holds everything revoke() needs, a credential can always be revoked, even when the broker
 * died between minting and recording success, and even after the backend's configuration changed.
 */

/** JSON-serialisable data stored with the lease; must never contain a secret. */
export type RevocationHandle = Readonly<Record<string, string | number | boolean | null>>;

export interface MintRequest {
  readonly leaseId: string;
  /** Role (postgres) or scope (HTTP APIs) name, as granted. */
  readonly role: string;
  readonly expiresAt: Date;
}

export interface CredentialPlan {
  /** What revoke() needs; persisted with the lease intent before minting. */
  readonly revocation: RevocationHandle;
  /**
   * Proxied credentials only: SHA-256 (base64url) of the lease token mint() will hand out, stored
   * (indexed) with the intent so the credential proxy finds the lease by token. Never the token.
   */
  readonly tokenHash?: string;
}

/** Returned to the agent once, never stored by the broker. */
export type IssuedCredential = Readonly<Record<string, string | number>>;

export interface CredentialBackend {
  readonly type: string;
  /** Checks that `role` is defined on this backend; throws TesseraError('invalid_request') otherwise. */
  validateRole(role: string): void;
  plan(request: MintRequest): CredentialPlan;
  /** Creates the credential upstream. Errors are BackendError with `retryable` set. */
  mint(request: MintRequest, plan: CredentialPlan): Promise<IssuedCredential>;
  /** Moves the upstream expiry (e.g. VALID UNTIL). */
  renew(revocation: RevocationHandle, expiresAt: Date): Promise<void>;
  /** Destroys the credential upstream. Idempotent: an already-gone credential counts as revoked. */
  revoke(revocation: RevocationHandle): Promise<void>;
  /**
   * Proves the root secret works: throws BackendError when the upstream cannot be reached or rejects
   * it, TesseraError(backend_privilege_missing) when it lacks a privilege leases need.
   */
  check(): Promise<void>;
  close(): Promise<void>;
}

export class BackendError extends Error {
  constructor(
    message: string,
    /** True for transient failures (upstream down, timeouts): the reaper retries these with backoff. */
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BackendError';
  }
}
