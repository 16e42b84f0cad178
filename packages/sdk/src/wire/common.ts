import { type Static, Type } from '@sinclair/typebox';
import { ERROR_CODES } from '../errors.js';

/** `{type: 'string', enum}`: what ajv reports as "must be equal to one of the allowed values" (a Type.Union of literals would be an anyOf). */
export function StringEnum<const T extends readonly string[]>(values: T, options: { description?: string } = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** An object of string values (`additionalProperties`, not Type.Record's patternProperties). */
export function StringMap(options: { maxLength?: number; propertyNames?: { pattern: string }; maxProperties?: number } = {}) {
  const { maxLength, ...rest } = options;
  return Type.Unsafe<Record<string, string>>({ type: 'object', ...rest, additionalProperties: { type: 'string', ...(maxLength !== undefined && { maxLength }) } });
}

/** A string or null (the broker writes null, never leaves the member out). */
export const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] });

/**
 * Every error response: a stable code from the error table and a message (docs/PROTOCOL.md §3).
 * Routes refer to it by $id (the broker registers it once with addSchema): one copy in OpenAPI.
 */
export const ErrorBody = Type.Object(
  {
    error: StringEnum(Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[]),
    message: Type.String(),
  },
  { $id: 'ErrorBody' },
);
export type ErrorBody = Static<typeof ErrorBody>;

const errorReply = Type.Ref(ErrorBody);

/** The error responses every authenticated route can give. */
export const errorResponses = {
  400: errorReply,
  401: errorReply,
  403: errorReply,
  404: errorReply,
  409: errorReply,
  429: errorReply,
} as const;

/** Errors of routes that talk to an upstream backend or key store, on top of the usual ones. */
export const upstreamErrorResponses = { ...errorResponses, 502: errorReply, 503: errorReply } as const;
