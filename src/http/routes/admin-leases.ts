import type { FastifyInstance } from 'fastify';
import { TesseraError } from '../../errors.js';
import type { IdentityService } from '../../identity/identities.js';
import { LEASE_STATES } from '../../leases/lease.js';
import type { LeaseService } from '../../leases/lease-service.js';
import type { LeaseState } from '../../store/schema.js';
import { callerOf } from '../plugins/proof-auth.js';
import { addressSchema } from '../schemas.js';
import { backendNameSchema, leaseIdParams, leaseViewSchema, revocationCountsSchema, upstreamErrorResponses } from './lease-schemas.js';

export interface AdminLeaseRouteOptions {
  readonly leases: LeaseService;
  readonly identities: IdentityService;
}

/** Every lease, and revocation in bulk (admin). */
export async function adminLeaseRoutes(app: FastifyInstance, { leases, identities }: AdminLeaseRouteOptions): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.get<{ Querystring: { identity?: string; backend?: string; state?: LeaseState } }>(
    '/v1/admin/leases',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { identity: { type: 'string' }, backend: { type: 'string' }, state: { type: 'string', enum: LEASE_STATES } },
        },
        response: { 200: { type: 'object', required: ['leases'], properties: { leases: { type: 'array', items: leaseViewSchema } } }, ...upstreamErrorResponses },
      },
    },
    async (request) => {
      const { identity, ...filter } = request.query;
      return { leases: await leases.list({ ...filter, ...(identity !== undefined && { address: identity }) }) };
    },
  );

  app.post<{ Body: { identity?: string; backend?: string; reason: string } }>(
    '/v1/admin/leases/revoke',
    {
      schema: {
        body: {
          type: 'object',
          required: ['reason'],
          additionalProperties: false,
          properties: { identity: addressSchema, backend: backendNameSchema, reason: { type: 'string', minLength: 1, maxLength: 1000 } },
        },
        response: { 200: revocationCountsSchema, ...upstreamErrorResponses },
      },
    },
    async (request) => {
      const { identity, backend, reason } = request.body;
      if (identity === undefined && backend === undefined) throw new TesseraError('invalid_request', 'Name an identity, a backend or both.');
      const identityId = identity === undefined ? undefined : (await identities.getByAddress(identity)).id;
      return leases.revokeWhere({ identityId, backend }, { actor: callerOf(request).id, reason });
    },
  );

  app.post<{ Body: { lease?: string; backend?: string } }>(
    '/v1/admin/leases/retry',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { lease: leaseIdParams.properties.id, backend: backendNameSchema },
        },
        response: { 200: revocationCountsSchema, ...upstreamErrorResponses },
      },
    },
    async (request) => leases.retry({ leaseId: request.body?.lease, backend: request.body?.backend }),
  );
}
