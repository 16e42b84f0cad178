/**
 * The form of a proxied request, checked before its scope (docs/PROTOCOL.md §9.2): what the scope
 * check reads must be what the upstream reads, and reading it must take linear time. Each check
 * returns the message of the `invalid_request` refusal, or undefined; none runs a regex.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { TOKEN_HEADERS } from './lease-token.js';

/**
 * The longest value of a header the proxy parses; longer ones are refused unread. Generous: a
 * lease token header is 54 characters, a media type at most 255 (RFC 6838) plus its parameters.
 */
export const MAX_PARSED_HEADER_LENGTH = 1024;

/** The headers the scope check parses, besides the token's. */
const PARSED_HEADERS = ['content-type', 'content-encoding'] as const;

/** Before the token is read. */
export const tokenHeaderProblem = (headers: IncomingHttpHeaders): string | undefined => overlongHeader(headers, TOKEN_HEADERS);

/** Before the scope check: headers short enough to parse. */
export const requestFormProblem = (headers: IncomingHttpHeaders): string | undefined => overlongHeader(headers, PARSED_HEADERS);

function overlongHeader(headers: IncomingHttpHeaders, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = headers[name];
    if (typeof value === 'string' && value.length > MAX_PARSED_HEADER_LENGTH) return `The ${name} header is longer than ${MAX_PARSED_HEADER_LENGTH} characters.`;
  }
  return undefined;
}
