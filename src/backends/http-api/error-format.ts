/**
 * Refusals of the credential proxy, in the error format of the API being proxied, so the official
 * SDK raises its usual error class (by status) with Tessera's reason in the message.
 */
import { ERROR_CODES, type ErrorCode } from '../../errors.js';

export type ErrorFormat = 'stripe' | 'openai' | 'tessera';

export interface ErrorReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

const STRIPE_TYPES: Readonly<Record<number, string>> = { 500: 'api_error', 502: 'api_error', 503: 'api_error' };
const OPENAI_TYPES: Readonly<Record<number, string>> = {
  401: 'authentication_error',
  403: 'permission_error',
  500: 'server_error',
  502: 'server_error',
  503: 'server_error',
};

/** The official SDKs retry 5xx by default and read these headers to skip retrying a refusal. */
const NO_RETRY = { 'stripe-should-retry': 'false', 'x-should-retry': 'false' };

export function errorReply(format: ErrorFormat, code: ErrorCode, message: string = ERROR_CODES[code].message): ErrorReply {
  const status = ERROR_CODES[code].status;
  const text = `Tessera: ${message}`;
  let error: unknown;
  switch (format) {
    case 'stripe':
      error = { error: { type: STRIPE_TYPES[status] ?? 'invalid_request_error', code, message: text } };
      break;
    case 'openai':
      error = { error: { message: text, type: OPENAI_TYPES[status] ?? 'invalid_request_error', param: null, code } };
      break;
    case 'tessera':
      error = { error: code, message: text };
      break;
  }
  return {
    status,
    headers: { 'content-type': 'application/json', ...(status < 500 && NO_RETRY) },
    body: JSON.stringify(error),
  };
}
