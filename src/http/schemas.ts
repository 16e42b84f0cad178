import { ADDRESS_PATTERN, ATTRIBUTE_KEY_PATTERN } from '../identity/identity.js';
import { errorBodySchema } from './plugins/error-handler.js';

const nullableString = { type: ['string', 'null'] } as const;

export const identitySchema = {
  type: 'object',
  required: ['identity_id', 'address', 'role', 'status', 'public_key', 'key_uri', 'attributes', 'created_at'],
  properties: {
    identity_id: { type: 'string' },
    address: { type: 'string' },
    role: { type: 'string', enum: ['agent', 'admin', 'reviewer'] },
    status: { type: 'string', enum: ['pending', 'active', 'revoked'] },
    public_key: { type: 'string' },
    key_uri: { type: 'string' },
    attributes: { type: 'object', additionalProperties: { type: 'string' } },
    created_at: { type: 'string' },
    enrolled_at: nullableString,
    revoked_at: nullableString,
    revoked_by: nullableString,
    revocation_reason: nullableString,
  },
} as const;

export const addressSchema = { type: 'string', pattern: ADDRESS_PATTERN, maxLength: 254 } as const;

export const attributesSchema = {
  type: 'object',
  propertyNames: { pattern: ATTRIBUTE_KEY_PATTERN },
  additionalProperties: { type: 'string', maxLength: 256 },
  maxProperties: 32,
} as const;

/** The error responses every authenticated route can give. */
export const errorResponses = {
  400: errorBodySchema,
  401: errorBodySchema,
  403: errorBodySchema,
  404: errorBodySchema,
  409: errorBodySchema,
  429: errorBodySchema,
} as const;
