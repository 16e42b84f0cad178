import type { FastifyInstance } from 'fastify';
import { TesseraError } from '../../errors.js';
import type { IdentityService } from '../../identity/identities.js';
import type { LeaseService } from '../../leases/lease-service.js';
import { callerOf } from '../plugins/proof-auth.js';
import { BulkRevokeRequest, BulkRevokeResponse, LeaseList, LeaseListQuery, RetryRevocationsRequest, upstreamErrorResponses } from '@tessera-broker/sdk/wire';

export interface AdminLeaseRouteOptions {
  readonly leases: LeaseService;
  readonly identities: IdentityService;
}

/** Every lease, and revocation in bulk (admin). */
export async function adminLeaseRoutes(app: FastifyInstance, { leases, identities }: AdminLeaseRouteOptions): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.get<{ Querystring: LeaseListQuery }>(
    '/v1/admin/leases',
    { schema: { querystring: LeaseListQuery, response: { 200: LeaseList, ...upstreamErrorResponses } } },
    async (request) => {
      const { identity, ...filter } = request.query;
      return { leases: await leases.list({ ...filter, ...(identity !== undefined && { address: identity }) }) };
    },
  );

  app.post<{ Body: BulkRevokeRequest }>(
    '/v1/admin/leases/revoke',
    { schema: { body: BulkRevokeRequest, response: { 200: BulkRevokeResponse, ...upstreamErrorResponses } } },
    async (request) => {
      const { identity, backend, reason } = request.body;
      if (identity === undefined && backend === undefined) throw new TesseraError('invalid_request', 'Name an identity, a backend or both.');
      const identityId = identity === undefined ? undefined : (await identities.getByAddress(identity)).id;
      return leases.revokeWhere({ identityId, backend }, { actor: callerOf(request).id, reason });
    },
  );

  app.post<{ Body: RetryRevocationsRequest }>(
    '/v1/admin/leases/retry',
    { schema: { body: RetryRevocationsRequest, response: { 200: BulkRevokeResponse, ...upstreamErrorResponses } } },
    async (request) => leases.retry({ leaseId: request.body?.lease, backend: request.body?.backend }),
  );
}
