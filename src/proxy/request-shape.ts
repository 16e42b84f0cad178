/**
 * The form of a proxied request, checked before its scope (docs/PROTOCOL.md §9.2): what the scope
 * check reads must be what the upstream reads, and reading it must take linear time. Each check
 * returns the message of the `invalid_request` refusal, or undefined; none runs a regex.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { HOP_BY_HOP } from './forward.js';
import { TOKEN_HEADERS } from './lease-token.js';

/**
 * The longest value of a header the proxy parses; longer ones are refused unread. Generous: a
 * lease token header is 54 characters, a media type at most 255 (RFC 6838) plus its parameters.
 */
export const MAX_PARSED_HEADER_LENGTH = 1024;

/** The headers the proxy parses besides the token's: the scope check's, and Connection. */
const PARSED_HEADERS = ['content-type', 'content-encoding', 'connection'] as const;

/** Before the token is read. */
export const tokenHeaderProblem = (headers: IncomingHttpHeaders): string | undefined => overlongHeader(headers, TOKEN_HEADERS);

/** Before the scope check: a canonical path, headers short enough to parse, Connection naming only hop-by-hop headers. */
export const requestFormProblem = (path: string, headers: IncomingHttpHeaders): string | undefined =>
  pathProblem(path) ?? overlongHeader(headers, PARSED_HEADERS) ?? connectionProblem(headers.connection);

function overlongHeader(headers: IncomingHttpHeaders, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = headers[name];
    if (typeof value === 'string' && value.length > MAX_PARSED_HEADER_LENGTH) return `The ${name} header is longer than ${MAX_PARSED_HEADER_LENGTH} characters.`;
  }
  return undefined;
}

/**
 * What a Connection header may name: `close`, and the hop-by-hop headers, all dropped before
 * forwarding anyway, but Transfer-Encoding (which frames the body). An end-to-end header named there
 * (Content-Type, Content-Length, Host, Authorization, ...) would be removed by every hop honouring
 * Connection, so the upstream would not receive what the scope check read.
 */
const CONNECTION_OPTIONS = new Set<string>(['close', ...HOP_BY_HOP.filter((name) => name !== 'transfer-encoding')]);

function connectionProblem(connection: string | undefined): string | undefined {
  if (connection === undefined || connection === 'keep-alive' || connection === 'close') return undefined; // what clients send: no split
  for (const option of connection.split(',')) {
    const name = option.trim().toLowerCase();
    if (name !== '' && !CONNECTION_OPTIONS.has(name)) return `Connection may name only hop-by-hop headers, not "${name}".`;
  }
  return undefined;
}

const charTable = (chars: string): Uint8Array => {
  const table = new Uint8Array(128);
  for (let index = 0; index < chars.length; index += 1) table[chars.charCodeAt(index)] = 1;
  return table;
};

/** RFC 3986's pchar without `;` (matrix parameters) and `%` (read as an escape): what a canonical segment holds as is. */
const SEGMENT_CHARS = charTable("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@");
/** Escaped, these could become a separator or a dot segment for an upstream that decodes the path (twice, for `%`). */
const REFUSED_ESCAPES = charTable('./\\;%');

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;

const notCanonical = (why: string) => `The request path is not in canonical form (${why}).`;

/**
 * Why a request path (without its query) is not canonical, or undefined. The scope check matches
 * the path as sent, while the upstream, or a server in front of it, may normalise it first, so
 * anything that could be read as another path is refused: a segment of dots only (`.`, `..`), an
 * empty segment (`//`; a trailing `/` is fine), `;` (matrix parameters, `..;`), a backslash or any
 * other character outside RFC 3986's pchar, a %-escape of `.`, `/`, `\`, `;` or `%` (so no double
 * encoding: `%252e`), an overlong UTF-8 sequence, and a malformed escape. One pass over the path.
 */
export function pathProblem(path: string): string | undefined {
  if (path.charCodeAt(0) !== SLASH) return notCanonical('it must start with "/"');
  let segmentStart = 1;
  let dotsOnly = true;
  for (let index = 1; index < path.length; index += 1) {
    const char = path.charCodeAt(index);
    if (char === SLASH) {
      if (index === segmentStart) return notCanonical('an empty segment');
      if (dotsOnly) return notCanonical('a dot segment');
      segmentStart = index + 1;
      dotsOnly = true;
      continue;
    }
    if (char !== DOT) dotsOnly = false;
    if (char === PERCENT) {
      const byte = escapedByte(path, index);
      if (!(byte >= 0)) return notCanonical('a malformed %-escape');
      if (REFUSED_ESCAPES[byte]) return notCanonical('an encoded ".", "/", "\\", ";" or "%"');
      if (isOverlongLead(byte, escapedByte(path, index + 3))) return notCanonical('an overlong UTF-8 escape');
      index += 2;
    } else if (!SEGMENT_CHARS[char]) {
      return notCanonical(char === 0x3b ? 'a ";" parameter' : `the character ${JSON.stringify(path[index])}`);
    }
  }
  return dotsOnly && path.length > segmentStart ? notCanonical('a dot segment') : undefined;
}

/** The byte a %-escape at `index` stands for; NaN if there is no well-formed escape there. */
const escapedByte = (path: string, index: number): number =>
  path.charCodeAt(index) === PERCENT ? hexDigit(path.charCodeAt(index + 1)) * 16 + hexDigit(path.charCodeAt(index + 2)) : Number.NaN;

/**
 * Whether an escaped UTF-8 lead byte, followed by the escaped byte `next` (NaN for none), starts an
 * overlong encoding: `%c0%ae` or `%e0%80%ae` is a "." to a lax decoder (Tomcat's CVE-2008-2938).
 */
const isOverlongLead = (lead: number, next: number): boolean => lead === 0xc0 || lead === 0xc1 || (lead === 0xe0 && next < 0xa0) || (lead === 0xf0 && next < 0x90);

/** The value of a hex digit's character code; NaN for anything else (so a sum with it is NaN). */
function hexDigit(char: number): number {
  if (char >= 0x30 && char <= 0x39) return char - 0x30;
  const lower = char | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : Number.NaN;
}
