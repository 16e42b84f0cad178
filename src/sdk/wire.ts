/**
 * JSON shapes of the lease, backend and grant routes, as the broker sends them. Shared by the SDK
 * (which maps them to camelCase objects) and the CLI (which prints them as they are).
 */

export interface PostgresCredential {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly username: string;
  readonly password: string;
}

/** HTTP API backends: point the official SDK at base_url with api_key as its key. */
export type ApiCredential = {
  readonly base_url: string;
  readonly api_key: string;
};

/** A backend's credential: PostgreSQL's shape, or whatever another backend type returns. */
export type LeaseCredential = PostgresCredential | ApiCredential | Readonly<Record<string, unknown>>;

export type LeaseState = 'active' | 'expired' | 'revoked' | 'revocation-pending';
export const LEASE_STATES: readonly LeaseState[] = ['active', 'expired', 'revoked', 'revocation-pending'];

/** `POST /v1/leases` -> 201. */
export interface LeaseResponse<C extends LeaseCredential = LeaseCredential> {
  readonly lease_id: string;
  readonly backend: string;
  /** postgres, stripe, openai, http, openai-admin: what shape `credential` has. */
  readonly backend_type: string;
  readonly role: string;
  readonly issued_at: string;
  readonly expires_at: string;
  readonly renewable: boolean;
  readonly credential: C;
}

/** `POST /v1/leases/:id/renew`. */
export interface RenewResponse {
  readonly lease_id: string;
  readonly expires_at: string;
  readonly renewable: boolean;
}

/** `DELETE /v1/leases/:id`. */
export interface RevokeResponse {
  readonly lease_id: string;
  readonly backend: string;
  readonly state: LeaseState;
  /** Why the lease is still revocation-pending, if it is. */
  readonly last_error: string | null;
}

/** A lease as the admin (and its owner, `GET /v1/leases/:id`) sees it: never the credential. */
export interface LeaseRecord {
  readonly lease_id: string;
  readonly identity_id: string;
  readonly address: string;
  readonly backend: string;
  readonly role: string;
  readonly state: LeaseState;
  readonly issued_at: string;
  readonly expires_at: string;
  readonly max_expires_at: string;
  readonly renewable: boolean;
  readonly revoked_at: string | null;
  readonly revoked_by: string | null;
  readonly revocation_reason: string | null;
  readonly last_error: string | null;
}

export interface BackendView {
  readonly name: string;
  readonly type: string;
  readonly roles: readonly string[];
  readonly created_at: string;
}

export interface GrantView {
  readonly grant_id: string;
  readonly subject: string;
  readonly backend: string;
  readonly role: string;
  readonly max_ttl_seconds: number;
  readonly default_ttl_seconds: number;
  /** Scope constraints (proxied HTTP API backends), e.g. {"max_amount": "5000"}. */
  readonly constraints: Readonly<Record<string, string>>;
  readonly created_at: string;
}

/** `POST /v1/admin/leases/revoke` and `/retry`, and the `leases` part of an identity revocation. */
export interface BulkRevokeResponse {
  readonly revoked: number;
  /** Leases left revocation-pending; the broker keeps retrying them. */
  readonly pending: number;
  /** The first 100 pending leases and the upstream's reason. */
  readonly failures: readonly { readonly lease_id: string; readonly backend: string; readonly error: string }[];
}
