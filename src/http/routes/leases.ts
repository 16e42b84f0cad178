import type { FastifyInstance } from 'fastify';
import type { LeaseIssuer } from '../../leases/issuer.js';
import { isRenewable, toIso } from '../../leases/lease.js';
import type { LeaseService } from '../../leases/lease-service.js';
import { callerOf } from '../plugins/proof-auth.js';
import { backendNameSchema, credentialSchema, leaseIdParams, leaseViewSchema, roleNameSchema, ttlSecondsSchema, upstreamErrorResponses } from './lease-schemas.js';

export interface LeaseRouteOptions {
  readonly issuer: LeaseIssuer;
  readonly leases: LeaseService;
}

type LeaseParams = { Params: { id: string } };
const secondsToMs = (seconds: number | undefined) => (seconds === undefined ? undefined : seconds * 1000);

/** An identity's own leases: request one, look at it, renew it, release it. */
export async function leaseRoutes(app: FastifyInstance, { issuer, leases }: LeaseRouteOptions): Promise<void> {
  app.addHook('preValidation', app.proofAuth.identity);

  app.post<{ Body: { backend: string; role: string; ttl_seconds?: number } }>(
    '/v1/leases',
    {
      schema: {
        body: {
          type: 'object',
          required: ['backend', 'role'],
          additionalProperties: false,
          properties: { backend: backendNameSchema, role: roleNameSchema, ttl_seconds: ttlSecondsSchema },
        },
        response: {
          201: {
            type: 'object',
            required: ['lease_id', 'backend', 'backend_type', 'role', 'issued_at', 'expires_at', 'renewable', 'credential'],
            properties: {
              lease_id: { type: 'string' },
              backend: { type: 'string' },
              backend_type: { type: 'string' },
              role: { type: 'string' },
              issued_at: { type: 'string' },
              expires_at: { type: 'string' },
              renewable: { type: 'boolean' },
              credential: credentialSchema,
            },
          },
          ...upstreamErrorResponses,
        },
      },
    },
    async (request, reply) => {
      const { backend, role, ttl_seconds } = request.body;
      const { lease, backendType, credential } = await issuer.issue(callerOf(request), { backend, role, ttlMs: secondsToMs(ttl_seconds) });
      return reply.status(201).send({
        lease_id: lease.id,
        backend: lease.backend,
        backend_type: backendType,
        role: lease.role,
        issued_at: toIso(lease.issued_at),
        expires_at: toIso(lease.expires_at),
        renewable: isRenewable(lease),
        credential,
      });
    },
  );

  app.get<LeaseParams>(
    '/v1/leases/:id',
    { schema: { params: leaseIdParams, response: { 200: leaseViewSchema, ...upstreamErrorResponses } } },
    async (request) => leases.view(callerOf(request), request.params.id),
  );

  app.post<LeaseParams & { Body: { ttl_seconds?: number } | undefined }>(
    '/v1/leases/:id/renew',
    {
      schema: {
        params: leaseIdParams,
        body: { type: 'object', additionalProperties: false, properties: { ttl_seconds: ttlSecondsSchema } },
        response: {
          200: {
            type: 'object',
            required: ['lease_id', 'expires_at', 'renewable'],
            properties: { lease_id: { type: 'string' }, expires_at: { type: 'string' }, renewable: { type: 'boolean' } },
          },
          ...upstreamErrorResponses,
        },
      },
    },
    async (request) => {
      const renewed = await leases.renew(callerOf(request), request.params.id, secondsToMs(request.body?.ttl_seconds));
      return { lease_id: renewed.id, expires_at: toIso(renewed.expires_at), renewable: isRenewable(renewed) };
    },
  );

  app.delete<LeaseParams>(
    '/v1/leases/:id',
    {
      schema: {
        params: leaseIdParams,
        response: {
          // last_error: why a lease is left revocation-pending (the broker keeps retrying it).
          200: {
            type: 'object',
            required: ['lease_id', 'backend', 'state', 'last_error'],
            properties: { lease_id: { type: 'string' }, backend: { type: 'string' }, state: leaseViewSchema.properties.state, last_error: leaseViewSchema.properties.last_error },
          },
          ...upstreamErrorResponses,
        },
      },
    },
    async (request) => {
      const lease = await leases.revoke(callerOf(request), request.params.id);
      return { lease_id: lease.id, backend: lease.backend, state: lease.state, last_error: lease.last_error };
    },
  );
}
