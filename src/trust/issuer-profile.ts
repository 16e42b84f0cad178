import type { JSONWebKeySet } from 'jose';
import { USER_TOKEN_ALGORITHMS } from '@tessera-broker/sdk/wire';

/** The only signature algorithms a user token may use: asymmetric, with keys jose checks for size (RSA >= 2048 bits). */
export { USER_TOKEN_ALGORITHMS };
export type UserTokenAlgorithm = (typeof USER_TOKEN_ALGORITHMS)[number];

/**
 * A trusted OpenID Connect / JWT identity provider, as `tessera trust add-issuer` records it.
 * Strict by construction: one exact `iss`, one exact `aud`, a subset of USER_TOKEN_ALGORITHMS, and
 * keys from exactly one place (a JWKS URL or a static JWKS), never from the token's own headers.
 */
export interface IssuerProfile {
  readonly issuer: string;
  readonly audience: string;
  readonly algorithms: readonly UserTokenAlgorithm[];
  readonly keys: { readonly jwksUrl: string } | { readonly jwks: JSONWebKeySet };
  /** claim -> value a token must carry to be accepted at all (e.g. {email_verified: "true"}) */
  readonly requiredClaims: Readonly<Record<string, string>>;
  readonly createdAt: number;
  readonly createdBy: string | null;
}
