/**
 * Scopes of proxied leases. A scope preset is a named set of request rules (method + path) plus the
 * constraints a grant may add (e.g. `max_amount`). A grant names the preset (as its role) and its
 * constraints; the credential proxy compiles the pair once and checks every request against it
 * before anything reaches the upstream. Request bodies are read only when a rule's constraint needs
 * them, and only the one field it checks; that field must be unambiguous (formField, jsonMember),
 * the body declared as the media type the check parses it as, and the query string empty (an
 * upstream may read parameters from either).
 */
import { TesseraError } from '../../errors.js';
import { nextIsColon, stringEnd } from '../../json-scan.js';

/** Constraint values as granted: strings; lists are comma-separated (`models=gpt-4o,gpt-4o-mini`). */
export type Constraints = Readonly<Record<string, string>>;

export interface Refusal {
  readonly code: 'scope_violation' | 'constraint_violation' | 'invalid_request';
  readonly message: string;
}

/** Checks a buffered request body; returns why it is refused, or undefined. */
export type BodyCheck = (body: Buffer) => Refusal | undefined;

/** The media types body checks parse: Stripe's form bodies, OpenAI's JSON. */
export type BodyMediaType = 'application/x-www-form-urlencoded' | 'application/json';

/** A constraint that reads the request body, parsed as one media type. */
export interface BodyConstraint {
  /** The request must declare it (Content-Type), so that the upstream parses the body as the check did. */
  readonly mediaType: BodyMediaType;
  /** The check a grant's constraints call for; undefined: the body streams through unread. */
  compile(constraints: Constraints): BodyCheck | undefined;
}

export interface ScopeRule {
  readonly method: string;
  /** Anchored pattern over the path without its query string. */
  readonly path: RegExp;
  readonly body?: BodyConstraint;
}

export interface ConstraintSpec {
  readonly description: string;
  /** Returns an error message for a bad value. */
  validate(value: string): string | undefined;
}

export interface ScopePreset {
  readonly description: string;
  readonly rules: readonly ScopeRule[];
  readonly constraints: Readonly<Record<string, ConstraintSpec>>;
}

/** A preset compiled with one grant's constraints: what the proxy asks per request. */
export interface Scope {
  /**
   * A Refusal, a BodyCheck the (buffered) body must pass, or null: allowed as is. `query` is the
   * query string without its `?` ('' for none); it and the body's headers count only where a
   * BodyCheck would be returned, which they may turn into a refusal.
   */
  check(method: string, path: string, query: string, headers: BodyHeaders): Refusal | BodyCheck | null;
}

/** The request headers that say how to read its body. */
export interface BodyHeaders {
  readonly 'content-type'?: string;
  readonly 'content-encoding'?: string;
}

export function isRefusal(verdict: Refusal | BodyCheck | null): verdict is Refusal {
  return verdict !== null && typeof verdict === 'object';
}

interface CompiledRule {
  readonly method: string;
  readonly path: RegExp;
  readonly body: { readonly check: BodyCheck; readonly mediaType: BodyMediaType } | undefined;
}

export function compileScope(preset: ScopePreset, constraints: Constraints): Scope {
  const rules = preset.rules.map((rule): CompiledRule => {
    const check = rule.body?.compile(constraints);
    return { method: rule.method, path: rule.path, body: check && { check, mediaType: rule.body!.mediaType } };
  });
  return {
    check(method, path, query, headers) {
      // A plain loop: no closure per request.
      for (let index = 0; index < rules.length; index += 1) {
        const { method: ruleMethod, path: rulePath, body } = rules[index]!;
        if (ruleMethod !== method || !rulePath.test(path)) continue;
        if (body === undefined) return null;
        // Stripe reads parameters from the query string of a POST too: the checked field could be sent there instead.
        if (query !== '') return ambiguous(`${method} ${path} takes no query string while a constraint checks its body`);
        if (!declaresMediaType(headers['content-type'], body.mediaType)) {
          return { code: 'invalid_request', message: `a constraint reads the body of ${method} ${path} as ${body.mediaType}: send it with that Content-Type` };
        }
        // The check reads the bytes as sent; a compressed body would only fail it with a misleading reason.
        if (!isIdentityEncoding(headers['content-encoding'])) {
          return { code: 'invalid_request', message: `a constraint reads the body of ${method} ${path}: send it without Content-Encoding` };
        }
        return body.check;
      }
      return { code: 'scope_violation', message: `${method} ${path} is outside the lease's scope.` };
    },
  };
}

/** No Content-Encoding, or `identity`: the body's bytes are the content. */
const isIdentityEncoding = (contentEncoding: string | undefined) => contentEncoding === undefined || equalsIgnoreCase(trimOWS(contentEncoding), 'identity');

/**
 * Whether a Content-Type header declares `mediaType`: compared case-insensitively, parameters
 * allowed, except a charset other than UTF-8 (the checks decode UTF-8; an upstream honouring another
 * charset would read other characters). Linear in the header's length, with no regex: these are
 * request data.
 */
export function declaresMediaType(contentType: string | undefined, mediaType: BodyMediaType): boolean {
  if (contentType === undefined) return false;
  const [type, ...parameters] = contentType.split(';');
  return equalsIgnoreCase(trimOWS(type!), mediaType) && parameters.every(isUtf8OrNoCharset);
}

/** A media type parameter other than `charset`, or `charset=utf-8` (quoted or not). */
function isUtf8OrNoCharset(parameter: string): boolean {
  const equals = parameter.indexOf('=');
  if (equals === -1 || !equalsIgnoreCase(trimOWS(parameter.slice(0, equals)), 'charset')) return true;
  const value = trimOWS(parameter.slice(equals + 1));
  return equalsIgnoreCase(value, 'utf-8') || equalsIgnoreCase(value, '"utf-8"');
}

/** `text` equals the lower-case `lower`, ignoring case; a long `text` is not copied to find out. */
const equalsIgnoreCase = (text: string, lower: string) => text.length === lower.length && text.toLowerCase() === lower;

/**
 * `text` without optional white space (SP, HTAB: RFC 9110 §5.6.3) at either end. A scan from each
 * end: the regex `[ \t]+$` retries from every blank of a run followed by other text, quadratic in
 * the run (a 16 KB header of blanks cost ~0.25 s). Not String.trim, which also drops what an
 * upstream would keep (NBSP, line breaks).
 */
function trimOWS(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isOWS(text.charCodeAt(start))) start += 1;
  while (end > start && isOWS(text.charCodeAt(end - 1))) end -= 1;
  return text.slice(start, end);
}

const isOWS = (char: number) => char === 0x20 || char === 0x09;

/** Validates a grant's constraints against the preset; unknown names and bad values are refused. */
export function checkConstraints(preset: ScopePreset | undefined, role: string, constraints: Constraints): void {
  const specs = preset?.constraints ?? {};
  for (const [name, value] of Object.entries(constraints)) {
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (!spec) {
      const known = Object.keys(specs);
      throw new TesseraError('invalid_request', `Scope "${role}" has no constraint "${name}"${known.length ? ` (known: ${known.join(', ')})` : ''}.`);
    }
    const problem = spec.validate(value);
    if (problem) throw new TesseraError('invalid_request', `Constraint ${name}: ${problem}`);
  }
}

/** `^prefix` at a path-segment boundary: `/v1/items` allows `/v1/items` and `/v1/items/3`, not `/v1/itemsx`. */
export function pathPrefix(prefix: string): RegExp {
  const escaped = prefix.replace(/\/+$/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped}(?:/|$)`);
}

/** Every method of `methods` on a path pattern. */
export const routes = (methods: readonly string[], path: RegExp, body?: BodyConstraint): ScopeRule[] =>
  methods.map((method) => ({ method, path, ...(body && { body }) }));

const ambiguous = (message: string): Refusal => ({ code: 'invalid_request', message: `the request is ambiguous: ${message}` });

/** `+` and %-escapes of ASCII characters decoded; escapes of other bytes stay as they are. */
const decodeAscii = (text: string) => text.replace(/\+/g, ' ').replace(/%([0-7][0-9A-Fa-f])/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
/** The word a form parser may take a key for: Rack drops leading brackets (and, in Rack 2, spaces after a separator) and reads `k[]`, `k[0]`, `k]` as `k`. */
const FIRST_WORD = /^[^A-Za-z0-9_]*([A-Za-z0-9_]*)/;

/**
 * The value of form field `name`, undefined if there is none, or a refusal when parsers could read
 * the body differently: first or last of a repeated field, or a key Rack-style parsers (Stripe's)
 * also take for `name` (`name[]`, `[name]`, `name]`, `%6Eame`, a field after `;` or `& `). Every key
 * whose first word is `name` counts; there must be exactly one, and it must be `name` itself.
 */
export function formField(body: Buffer, name: string): { value: string } | Refusal | undefined {
  let found: { value: string } | undefined;
  // `;` separates fields for some parsers (Rack 2); treating it as a separator over-counts, never under-counts.
  for (const field of body.toString('utf8').split(/[&;]/)) {
    const equals = field.indexOf('=');
    const key = decodeAscii(equals === -1 ? field : field.slice(0, equals));
    if (FIRST_WORD.exec(key)![1] !== name) continue;
    if (found || key !== name) return ambiguous(`"${name}" must appear exactly once, as a plain ${name}=<value> field`);
    try {
      found = { value: equals === -1 ? '' : decodeURIComponent(field.slice(equals + 1).replace(/\+/g, ' ')) };
    } catch {
      return { code: 'invalid_request', message: `the "${name}" field is not valid percent-encoding` };
    }
  }
  return found;
}

/**
 * The top-level member `name` of a JSON body, or a refusal if the body is not JSON or names the
 * member twice (JSON.parse keeps the last, other parsers the first). `name` must be a plain word:
 * then, with no `\u` escape in the body, `"name"` is its only spelling, and a body holding that
 * string once at most (the common case) needs no scan.
 */
export function jsonMember(body: Buffer, name: string): { value: unknown } | Refusal {
  const text = body.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { code: 'invalid_request', message: 'the request body is not valid JSON' };
  }
  const quoted = `"${name}"`;
  const first = text.indexOf(quoted);
  const plainOnce = first === -1 || text.indexOf(quoted, first + 1) === -1;
  if (!(plainOnce && !text.includes('\\u')) && topLevelCount(text, name) > 1) return ambiguous(`"${name}" appears more than once at the top level`);
  const isObject = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
  return { value: isObject && Object.hasOwn(parsed as object, name) ? (parsed as Record<string, unknown>)[name] : undefined };
}

const QUOTE = 0x22;

/** How many members of the top-level object of valid JSON `text` are named `name` (escaped spellings too). */
function topLevelCount(text: string, name: string): number {
  let depth = 0;
  let count = 0;
  for (let index = 0; index < text.length; index += 1) {
    const char = text.charCodeAt(index);
    if (char === QUOTE) {
      const end = stringEnd(text, index);
      if (depth === 1 && nextIsColon(text, end + 1)) {
        const key = text.slice(index, end + 1);
        if (key === `"${name}"` || (key.includes('\\') && JSON.parse(key) === name)) count += 1;
      }
      index = end;
    } else if (char === 0x7b || char === 0x5b) depth += 1; // { [
    else if (char === 0x7d || char === 0x5d) depth -= 1; // } ]
  }
  return count;
}
