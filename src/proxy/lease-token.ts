import type { IncomingHttpHeaders } from 'node:http';
import type { Kysely } from 'kysely';
import { precompiled } from '../store/precompiled.js';
import type { Database, IdentityTable, LeaseState } from '../store/schema.js';

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

export interface ProxiedLease {
  readonly id: string;
  readonly identity_id: string;
  readonly backend: string;
  readonly role: string;
  readonly constraints: string;
  /** JSON RFC 8693 `act` chain of a delegated lease, else null */
  readonly act: string | null;
  readonly state: LeaseState;
  readonly expires_at: number;
  readonly identity_status: IdentityTable['status'];
  readonly identity_role: IdentityTable['role'];
}

const leaseQuery = precompiled<ProxiedLease>(
  (db, tokenHash: string) =>
    db
      .selectFrom('leases')
      .innerJoin('identities', 'identities.id', 'leases.identity_id')
      .select(['leases.id', 'leases.identity_id', 'leases.backend', 'leases.role', 'leases.constraints', 'leases.act', 'leases.state', 'leases.expires_at', 'identities.status as identity_status', 'identities.role as identity_role'])
      .where('leases.token_hash', '=', tokenHash),
  ['token hash'],
);

/**
 * The lease (and its identity's status) behind a token, by the token's sha256Base64url (as
 * leases.token_hash stores it): one indexed lookup per proxied request, so a revocation or expiry
 * bites on the very next request, keep-alive connection or not. The query is compiled once
 * (precompiled.ts), not rebuilt through kysely per request.
 */
export async function leaseByTokenHash(db: Kysely<Database>, tokenHash: string): Promise<ProxiedLease | undefined> {
  return (await leaseQuery(db, [tokenHash])).rows[0];
}
