import { type Static, Type } from '@sinclair/typebox';
import { NullableString, StringEnum, StringMap } from './common.js';

export const ADDRESS_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}@[A-Za-z0-9][A-Za-z0-9.-]{0,189}$';
export const ATTRIBUTE_KEY_PATTERN = '^[A-Za-z0-9_.:-]{1,64}$';

/** An identity's address, e.g. billing-bot@acme.local. */
export const Address = Type.String({ pattern: ADDRESS_PATTERN, maxLength: 254 });

export const Attributes = StringMap({ propertyNames: { pattern: ATTRIBUTE_KEY_PATTERN }, maxLength: 256, maxProperties: 32 });

export const IDENTITY_ROLES = ['agent', 'admin', 'reviewer'] as const;
export const IdentityRole = StringEnum(IDENTITY_ROLES);
export type IdentityRole = Static<typeof IdentityRole>;
export const IDENTITY_STATUSES = ['pending', 'active', 'suspended', 'revoked'] as const;
export const IdentityStatus = StringEnum(IDENTITY_STATUSES);
export type IdentityStatus = Static<typeof IdentityStatus>;

/** An identity as the broker shows it (`GET /v1/whoami`, admin and review listings). */
export const IdentityView = Type.Object({
  identity_id: Type.String(),
  address: Type.String(),
  role: IdentityRole,
  status: IdentityStatus,
  /** Raw Ed25519 public key, base64url. */
  public_key: Type.String(),
  key_uri: Type.String(),
  attributes: StringMap(),
  created_at: Type.String(),
  enrolled_at: NullableString,
  revoked_at: NullableString,
  revoked_by: NullableString,
  revocation_reason: NullableString,
});
export type IdentityView = Static<typeof IdentityView>;

/** `POST /v1/enroll`. */
export const EnrollRequest = Type.Object({ ticket: Type.String({ minLength: 10, maxLength: 128 }) }, { additionalProperties: false });
export type EnrollRequest = Static<typeof EnrollRequest>;

export const EnrollResponse = Type.Object({ identity: IdentityView, credential: Type.String(), credential_expires_at: Type.String() });
export type EnrollResponse = Static<typeof EnrollResponse>;

/** Identity listings (admin and review): filter by status and role. */
export const IdentityListQuery = Type.Object({ status: Type.Optional(IdentityStatus), role: Type.Optional(IdentityRole) }, { additionalProperties: false });
export type IdentityListQuery = Static<typeof IdentityListQuery>;

export const IdentityList = Type.Object({ identities: Type.Array(IdentityView) });
export type IdentityList = Static<typeof IdentityList>;

export const AddressParams = Type.Object({ address: Address });
export type AddressParams = Static<typeof AddressParams>;

/** `POST /v1/admin/identities`: registers an identity whose key was generated in its key store. */
export const RegisterIdentityRequest = Type.Object(
  {
    address: Address,
    /** Raw Ed25519 public key, base64url. */
    public_key: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
    key_uri: Type.String({ pattern: '^(pkcs11|aws-kms):', maxLength: 1024 }),
    attributes: Type.Optional(Attributes),
    role: Type.Optional(StringEnum(['agent', 'reviewer'] as const)),
  },
  { additionalProperties: false },
);
export type RegisterIdentityRequest = Static<typeof RegisterIdentityRequest>;

/** `POST /v1/admin/identities/:address/tickets`. */
export const TicketRequest = Type.Object({ ttl_seconds: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false });
export type TicketRequest = Static<typeof TicketRequest>;

export const TicketResponse = Type.Object({ identity_id: Type.String(), address: Type.String(), ticket: Type.String(), ticket_expires_at: Type.String() });
export type TicketResponse = Static<typeof TicketResponse>;

/** `POST /v1/admin/identities/:address/revoke`. */
export const RevokeIdentityRequest = Type.Object({ reason: Type.String({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false });
export type RevokeIdentityRequest = Static<typeof RevokeIdentityRequest>;
