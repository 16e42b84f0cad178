import type { IncomingHttpHeaders } from 'node:http';

/** Headers that may carry the lease token; the proxy strips both before forwarding. */
export const TOKEN_HEADERS = ['authorization', 'x-api-key'] as const;

/**
 * The lease token, as the official SDKs send their API key: `Authorization: Bearer <token>`
 * (Stripe, OpenAI), or `x-api-key: <token>` for clients of APIs keyed that way.
 */
export function leaseToken(headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers.authorization;
  if (authorization !== undefined) return /^Bearer +(\S+)$/i.exec(authorization)?.[1];
  const apiKey = headers['x-api-key'];
  return typeof apiKey === 'string' && apiKey !== '' ? apiKey : undefined;
}
