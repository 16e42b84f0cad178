import { parseDuration, ttlSeconds } from '@tessera-broker/sdk';
import { TesseraError } from '../../errors.js';

/** One `--lease [NAME=]<backend>:<role>[:<ttl>]` of `tessera run`. */
export interface LeaseSpec {
  /** As given, for messages. */
  readonly text: string;
  /** `NAME=`: prefix of every variable this lease sets (`NAME_...`). */
  readonly name?: string;
  readonly backend: string;
  readonly role: string;
  /** Default: the grant's default TTL. */
  readonly ttlSeconds?: number;
}

export const LEASE_SPEC_SYNTAX = '[NAME=]<backend>:<role>[:<ttl>]';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Backend names are the broker's (lease-schemas.ts): no ':' and no '=', so both split unambiguously.
const BACKEND_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * Parses one --lease. Roles may contain ':' (Stripe's `refunds:write`), so the TTL is the last
 * `:`-part only when it reads as a duration (`300`, `90s`, `5m`, `1h`); a role whose last part
 * looks like one needs an explicit TTL after it.
 */
export function parseLeaseSpec(text: string): LeaseSpec {
  const invalid = (why: string) => new TesseraError('invalid_request', `--lease ${JSON.stringify(text)}: ${why} (expected ${LEASE_SPEC_SYNTAX}, e.g. orders-db:readonly:15m).`);
  const equals = text.indexOf('=');
  const name = equals === -1 ? undefined : text.slice(0, equals);
  if (name !== undefined && !ENV_NAME.test(name)) throw invalid(`"${name}" is not a variable name (letters, digits and _, not starting with a digit)`);
  const rest = text.slice(equals + 1);
  const colon = rest.indexOf(':');
  if (colon === -1) throw invalid('no role');
  const backend = rest.slice(0, colon);
  if (!BACKEND_NAME.test(backend)) throw invalid(`"${backend}" is not a backend name`);
  let role = rest.slice(colon + 1);
  let ttl: number | undefined;
  const lastColon = role.lastIndexOf(':');
  const ttlText = lastColon === -1 ? undefined : role.slice(lastColon + 1);
  if (ttlText !== undefined && parseDuration(ttlText) !== undefined) {
    try {
      ttl = ttlSeconds(ttlText, 'the TTL');
    } catch (error) {
      throw invalid((error as Error).message.replace(/\.$/, ''));
    }
    role = role.slice(0, lastColon);
  }
  if (role === '') throw invalid('no role');
  return { text, ...(name !== undefined && { name }), backend, role, ...(ttl !== undefined && { ttlSeconds: ttl }) };
}

/**
 * Refuses specs whose variables would certainly collide (one backend twice without names, or one
 * name twice) before anything is leased. Leases on two backends of one type collide too; that is
 * only known once the broker names the types (see leaseEnvironment's caller).
 */
export function checkDistinct(specs: readonly LeaseSpec[]): void {
  const seen = new Map<string, LeaseSpec>();
  for (const spec of specs) {
    const key = spec.name === undefined ? `backend ${spec.backend}` : `name ${spec.name}`;
    const earlier = seen.get(key);
    if (earlier) {
      throw new TesseraError('invalid_request', `--lease ${earlier.text} and --lease ${spec.text} would set the same variables; give each its own name: --lease NAME=${spec.backend}:${spec.role}.`);
    }
    seen.set(key, spec);
  }
}
