import { type Static, Type } from '@sinclair/typebox';
import { NullableString } from './common.js';
import { IdentityView } from './identities.js';

/** One of an identity's keys: the current one has no not_after. */
export const IdentityKeyView = Type.Object({
  /** RFC 7638 thumbprint: the `kid` of the proofs it signs. */
  key_id: Type.String(),
  key_uri: Type.String(),
  /** Raw Ed25519 public key, base64url. */
  public_key: Type.String(),
  created_at: Type.String(),
  /** A superseded key's proofs are refused (`key_retired`) from then on. */
  not_after: NullableString,
  retired_at: NullableString,
});
export type IdentityKeyView = Static<typeof IdentityKeyView>;

export const IdentityKeyList = Type.Object({ identity_id: Type.String(), keys: Type.Array(IdentityKeyView) });
export type IdentityKeyList = Static<typeof IdentityKeyList>;

/** `POST /v1/admin/identities/:address/keys`: a key generated in the same key store becomes the primary key. */
export const RotateIdentityKeyRequest = Type.Object(
  {
    public_key: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
    key_uri: Type.String({ pattern: '^(pkcs11|aws-kms):', maxLength: 1024 }),
    /** How long the old key is still accepted; default 600. */
    grace_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600 })),
  },
  { additionalProperties: false },
);
export type RotateIdentityKeyRequest = Static<typeof RotateIdentityKeyRequest>;

export const RotateIdentityKeyResponse = Type.Object({ identity: IdentityView, key: IdentityKeyView, previous_key: IdentityKeyView });
export type RotateIdentityKeyResponse = Static<typeof RotateIdentityKeyResponse>;

/** `POST /v1/admin/authority/rotate`. */
export const RotateAuthorityRequest = Type.Object(
  {
    /** How long the old key stays in JWKS; default 86400. */
    overlap_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 * 24 * 3600 })),
  },
  { additionalProperties: false },
);
export type RotateAuthorityRequest = Static<typeof RotateAuthorityRequest>;

export const RotateAuthorityResponse = Type.Object({
  kid: Type.String(),
  key_uri: Type.String(),
  previous_kid: Type.String(),
  previous_key_uri: Type.String(),
  /** the old key leaves JWKS then */
  previous_not_after: Type.String(),
});
export type RotateAuthorityResponse = Static<typeof RotateAuthorityResponse>;

/** `POST /v1/admin/wrapping-key/rotate`. */
export const RotateWrappingKeyResponse = Type.Object({
  key_uri: Type.String(),
  previous_key_uri: Type.String(),
  /** backends whose data key was re-wrapped */
  rewrapped: Type.Integer(),
});
export type RotateWrappingKeyResponse = Static<typeof RotateWrappingKeyResponse>;

/** `POST /v1/credentials`: a fresh identity credential under the current authority key. */
export const CredentialResponse = Type.Object({ credential: Type.String(), credential_expires_at: Type.String() });
export type CredentialResponse = Static<typeof CredentialResponse>;
