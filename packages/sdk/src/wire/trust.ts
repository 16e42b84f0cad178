/** JSON shapes of the admin's trusted-issuer routes (docs/PROTOCOL.md §13). */
import { type Static, Type } from '@sinclair/typebox';
import { NullableString, StringEnum, StringMap } from './common.js';

/** The signature algorithms a trusted issuer may use: asymmetric only, never HS* or `none`. */
export const USER_TOKEN_ALGORITHMS = ['EdDSA', 'ES256', 'RS256'] as const;

/** An issuer identifier as tokens carry it in `iss`, compared exactly (no trailing-slash folding). */
export const IssuerUrl = Type.String({ minLength: 1, maxLength: 512 });

/** An issuer's static JWKS: public keys only (the broker refuses symmetric and private keys). */
export const IssuerJwks = Type.Object({ keys: Type.Array(Type.Object({ kty: Type.String() }, { additionalProperties: true }), { minItems: 1, maxItems: 32 }) });
export type IssuerJwks = Static<typeof IssuerJwks>;

/** Claims a token must carry to be accepted at all: list claims (e.g. `groups`) must contain the value. */
export const RequiredClaims = StringMap({ maxProperties: 16, propertyNames: { pattern: '^[A-Za-z0-9_.:-]{1,64}$' }, maxLength: 256 });

/** `POST /v1/admin/trust/issuers`: exactly one of jwks_url and jwks. */
export const TrustIssuerRequest = Type.Object(
  {
    issuer: IssuerUrl,
    audience: Type.String({ minLength: 1, maxLength: 512 }),
    jwks_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
    jwks: Type.Optional(IssuerJwks),
    algorithms: Type.Optional(Type.Array(StringEnum(USER_TOKEN_ALGORITHMS), { minItems: 1, uniqueItems: true })),
    required_claims: Type.Optional(RequiredClaims),
  },
  { additionalProperties: false },
);
export type TrustIssuerRequest = Static<typeof TrustIssuerRequest>;

/** A trusted issuer profile; a static JWKS is summarised by its key ids. */
export const IssuerView = Type.Object({
  issuer: Type.String(),
  audience: Type.String(),
  algorithms: Type.Array(Type.String()),
  jwks_url: NullableString,
  /** key ids of the static JWKS (null with jwks_url) */
  static_kids: Type.Union([Type.Array(Type.String()), Type.Null()]),
  required_claims: RequiredClaims,
  created_at: Type.String(),
});
export type IssuerView = Static<typeof IssuerView>;

export const IssuerList = Type.Object({ issuers: Type.Array(IssuerView) });
export type IssuerList = Static<typeof IssuerList>;

/** `DELETE /v1/admin/trust/issuers?issuer=<iss>`: an issuer URL does not fit a path segment. */
export const IssuerQuery = Type.Object({ issuer: IssuerUrl }, { additionalProperties: false });
export type IssuerQuery = Static<typeof IssuerQuery>;

export const IssuerRemoved = Type.Object({ issuer: Type.String(), removed: Type.Boolean() });
export type IssuerRemoved = Static<typeof IssuerRemoved>;
