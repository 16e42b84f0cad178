import type { FastifyInstance } from 'fastify';
import type { ChangeFeed } from '../../changes/change-feed.js';
import type { Authority } from '../../identity/authority.js';
import { PROOF_MAX_SKEW_SECONDS, PROOF_TYPE } from '../../identity/proof.js';
import type { LeaseService } from '../../leases/lease-service.js';

export interface DiscoveryOptions {
  readonly authority: Authority;
  readonly leases: LeaseService;
  readonly changes: ChangeFeed;
  readonly publicUrl: string;
}

const jwkSchema = {
  type: 'object',
  required: ['kty', 'crv', 'x', 'kid'],
  properties: { kty: { type: 'string' }, crv: { type: 'string' }, x: { type: 'string' }, kid: { type: 'string' }, alg: { type: 'string' }, use: { type: 'string' } },
} as const;

/** Public, unauthenticated documents: everything a client in any language needs from the broker URL alone. */
export async function discoveryRoutes(app: FastifyInstance, { authority, leases, changes, publicUrl }: DiscoveryOptions): Promise<void> {
  const configuration = {
    issuer: publicUrl,
    proof_audience: publicUrl,
    proof_typ: PROOF_TYPE,
    proof_signing_alg_values_supported: ['EdDSA'],
    proof_max_clock_skew_seconds: PROOF_MAX_SKEW_SECONDS,
    authorization_scheme: 'Proof',
    jwks_uri: `${publicUrl}/.well-known/jwks.json`,
    enroll_endpoint: `${publicUrl}/v1/enroll`,
    whoami_endpoint: `${publicUrl}/v1/whoami`,
    admin_identities_endpoint: `${publicUrl}/v1/admin/identities`,
    admin_audit_endpoint: `${publicUrl}/v1/admin/audit`,
    key_stores_supported: ['pkcs11', 'kms'],
  };

  // Leases whose revocation failed and is being retried: a credential may still work upstream. A
  // replica that cannot confirm its change feed is current answers 503, so a load balancer skips it.
  const health = {
    type: 'object',
    properties: { status: { type: 'string' }, revocations_pending: { type: 'integer' }, replica_lag_ms: { type: ['integer', 'null'] } },
  } as const;
  app.get('/healthz', { schema: { response: { 200: health, 503: health } } }, async (_request, reply) => {
    const current = await changes.ensureCurrent().then(
      () => true,
      () => false,
    );
    const lag = changes.status().lagMs;
    if (!current) return reply.code(503).send({ status: 'replica_stale', replica_lag_ms: lag });
    return { status: 'ok', revocations_pending: await leases.pendingRevocations(), replica_lag_ms: lag };
  });

  app.get(
    '/.well-known/jwks.json',
    { schema: { response: { 200: { type: 'object', required: ['keys'], properties: { keys: { type: 'array', items: jwkSchema } } } } } },
    async () => authority.jwks(),
  );

  app.get(
    '/.well-known/tessera-configuration',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: Object.fromEntries(
              Object.entries(configuration).map(([key, value]) => [
                key,
                Array.isArray(value) ? { type: 'array', items: { type: 'string' } } : { type: typeof value },
              ]),
            ),
          },
        },
      },
    },
    async () => configuration,
  );
}
