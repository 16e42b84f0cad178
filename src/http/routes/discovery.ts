import { Discovery, Health, Jwks } from '@tessera-broker/sdk/wire';
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
  readonly sessionMaxLifetimeSeconds: number;
}

/** Unauthenticated routes: no proof in the OpenAPI document either. */
const PUBLIC: never[] = [];

/** Public, unauthenticated documents: everything a client in any language needs from the broker URL alone. */
export async function discoveryRoutes(app: FastifyInstance, { authority, leases, changes, publicUrl, sessionMaxLifetimeSeconds }: DiscoveryOptions): Promise<void> {
  const configuration: Discovery = {
    issuer: publicUrl,
    proof_audience: publicUrl,
    proof_typ: PROOF_TYPE,
    proof_signing_alg_values_supported: ['EdDSA'],
    proof_max_clock_skew_seconds: PROOF_MAX_SKEW_SECONDS,
    authorization_scheme: 'Proof',
    jwks_uri: `${publicUrl}/.well-known/jwks.json`,
    audit_jwks_uri: `${publicUrl}/.well-known/audit-jwks.json`,
    enroll_endpoint: `${publicUrl}/v1/enroll`,
    whoami_endpoint: `${publicUrl}/v1/whoami`,
    sessions_endpoint: `${publicUrl}/v1/sessions`,
    session_max_lifetime_seconds: sessionMaxLifetimeSeconds,
    admin_identities_endpoint: `${publicUrl}/v1/admin/identities`,
    admin_audit_endpoint: `${publicUrl}/v1/admin/audit`,
    key_stores_supported: ['pkcs11', 'kms'],
    openapi_uri: `${publicUrl}/openapi.json`,
  };

  // Leases whose revocation failed and is being retried: a credential may still work upstream. A
  // replica that cannot confirm its change feed is current answers 503, so a load balancer skips it.
  app.get('/healthz', { schema: { security: PUBLIC, response: { 200: Health, 503: Health } } }, async (_request, reply) => {
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
    { schema: { security: PUBLIC, response: { 200: Jwks } } },
    async () => authority.jwks(),
  );

  // Checkpoints signed before a rotation verify against it after the old key has left jwks.json.
  app.get(
    '/.well-known/audit-jwks.json',
    { schema: { security: PUBLIC, response: { 200: Jwks } } },
    async () => authority.auditJwks(),
  );

  app.get(
    '/.well-known/tessera-configuration',
    { schema: { security: PUBLIC, response: { 200: Discovery } } },
    async () => configuration,
  );

  // This API as OpenAPI 3.1, generated from the route schemas (also committed as docs/openapi.json).
  app.get('/openapi.json', { schema: { security: PUBLIC } }, async () => app.swagger());
}
