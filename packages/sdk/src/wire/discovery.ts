import { type Static, Type } from '@sinclair/typebox';

/** `GET /.well-known/tessera-configuration`: everything a client needs from the broker URL alone. */
export const Discovery = Type.Object({
  issuer: Type.String(),
  proof_audience: Type.String(),
  proof_typ: Type.String(),
  proof_signing_alg_values_supported: Type.Array(Type.String()),
  proof_max_clock_skew_seconds: Type.Number(),
  authorization_scheme: Type.String(),
  jwks_uri: Type.String(),
  /** Every authority key ever used, for audit checkpoints only (they outlive a key's JWKS overlap). */
  audit_jwks_uri: Type.String(),
  enroll_endpoint: Type.String(),
  whoami_endpoint: Type.String(),
  /** where a session certificate is registered (docs/PROTOCOL.md §3.1) */
  sessions_endpoint: Type.String(),
  /** the longest session lifetime (exp - iat) the broker accepts */
  session_max_lifetime_seconds: Type.Integer(),
  admin_identities_endpoint: Type.String(),
  admin_audit_endpoint: Type.String(),
  key_stores_supported: Type.Array(Type.String()),
  openapi_uri: Type.String(),
});
export type Discovery = Static<typeof Discovery>;

export const Jwk = Type.Object({
  kty: Type.String(),
  crv: Type.String(),
  x: Type.String(),
  kid: Type.String(),
  alg: Type.Optional(Type.String()),
  use: Type.Optional(Type.String()),
});

/** `GET /.well-known/jwks.json`: the authority's public keys. */
export const Jwks = Type.Object({ keys: Type.Array(Jwk) });
export type Jwks = Static<typeof Jwks>;

/** `GET /healthz`; revocations_pending: leases whose revocation failed and is being retried. */
export const Health = Type.Object({
  status: Type.Optional(Type.String()),
  revocations_pending: Type.Optional(Type.Integer()),
  /** how long ago this replica last confirmed it had read every committed change; null before the first read */
  replica_lag_ms: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
});
export type Health = Static<typeof Health>;
