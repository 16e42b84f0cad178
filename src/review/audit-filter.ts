import { AUDIT_OUTCOMES, MAX_AUDIT_LIMIT, RFC3339_PATTERN } from '@tessera-broker/sdk/wire';
import type { AuditFilter } from '../audit/query.js';
import { TesseraError } from '../errors.js';
import type { IdentityService } from '../identity/identities.js';

/**
 * The audit filters as the API query string, the CLI flags and the review page's form name them
 * (all strings, all optional). One parser for all three, so they cannot drift apart.
 */
export interface AuditQuery {
  /** address or identity id: events about it */
  readonly identity?: string;
  /** identity id: events it caused */
  readonly actor?: string;
  readonly lease?: string;
  readonly backend?: string;
  /** the subject a delegation chain acts for (a user's `sub`) */
  readonly on_behalf_of?: string;
  readonly action?: string;
  readonly outcome?: string;
  /** RFC 3339 */
  readonly since?: string;
  readonly until?: string;
  readonly after?: string | number;
  readonly before?: string | number;
  readonly order?: string;
  readonly limit?: string | number;
}

export const AUDIT_QUERY_KEYS = ['identity', 'actor', 'lease', 'backend', 'on_behalf_of', 'action', 'outcome', 'since', 'until', 'after', 'before', 'order', 'limit'] as const;
export { AUDIT_OUTCOMES, MAX_AUDIT_LIMIT, RFC3339_PATTERN };
export const DEFAULT_AUDIT_LIMIT = 100;

const invalid = (message: string) => new TesseraError('invalid_request', message);
/** Empty form fields mean "no filter". */
const given = (value: string | number | undefined): string | undefined => (value === undefined || String(value).trim() === '' ? undefined : String(value).trim());

function integer(name: string, value: string | number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const text = given(value);
  if (text === undefined) return undefined;
  const number = Number(text);
  if (!Number.isInteger(number) || number < min || number > max) throw invalid(`${name} must be an integer from ${min} to ${max}.`);
  return number;
}

function time(name: string, value: string | undefined): number | undefined {
  const text = given(value);
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (!new RegExp(RFC3339_PATTERN).test(text) || Number.isNaN(ms)) throw invalid(`${name} must be an RFC 3339 time such as 2026-01-31T12:00:00Z.`);
  return ms;
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  const text = given(value);
  if (text === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(text)) throw invalid(`${name} must be one of ${allowed.join(', ')}.`);
  return text as T;
}

/** Validates `query` and resolves an identity address to its id (an unknown one is taken as an id). */
export async function toAuditFilter(query: AuditQuery, identities: Pick<IdentityService, 'findByAddress'>): Promise<AuditFilter> {
  const identity = given(query.identity);
  return {
    identityId: identity === undefined ? undefined : ((await identities.findByAddress(identity))?.id ?? identity),
    actor: given(query.actor),
    lease: given(query.lease),
    backend: given(query.backend),
    onBehalfOf: given(query.on_behalf_of),
    action: given(query.action),
    outcome: oneOf('outcome', query.outcome, AUDIT_OUTCOMES),
    since: time('since', query.since),
    until: time('until', query.until),
    after: integer('after', query.after, 0),
    before: integer('before', query.before, 1),
    order: oneOf('order', query.order, ['asc', 'desc'] as const),
    limit: integer('limit', query.limit, 1, MAX_AUDIT_LIMIT) ?? DEFAULT_AUDIT_LIMIT,
  };
}
