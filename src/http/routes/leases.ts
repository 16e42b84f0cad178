import type { FastifyInstance } from 'fastify';
import type { LeaseIssuer } from '../../leases/issuer.js';
import { isRenewable, toIso } from '../../leases/lease.js';
import type { LeaseService } from '../../leases/lease-service.js';
import { callerOf } from '../plugins/proof-auth.js';
import { LeaseIdParams, LeaseRecord, LeaseRequest, LeaseResponse, RenewRequest, RenewResponse, RevokeResponse, upstreamErrorResponses } from '@tessera-broker/sdk/wire';

export interface LeaseRouteOptions {
  readonly issuer: LeaseIssuer;
  readonly leases: LeaseService;
}

type LeaseParams = { Params: LeaseIdParams };
/** Issue, renew and release write leases only, which no replica caches. */
const LEASES_ONLY = { writesNothingCached: true } as const;
const secondsToMs = (seconds: number | undefined) => (seconds === undefined ? undefined : seconds * 1000);

/** An identity's own leases: request one, look at it, renew it, release it. */
export async function leaseRoutes(app: FastifyInstance, { issuer, leases }: LeaseRouteOptions): Promise<void> {
  app.addHook('preValidation', app.proofAuth.identity);

  app.post<{ Body: LeaseRequest }>(
    '/v1/leases',
    { schema: { body: LeaseRequest, response: { 201: LeaseResponse, ...upstreamErrorResponses } }, config: LEASES_ONLY },
    async (request, reply) => {
      const { backend, role, ttl_seconds, delegation } = request.body;
      const { lease, backendType, credential } = await issuer.issue(callerOf(request), { backend, role, ttlMs: secondsToMs(ttl_seconds), ...(delegation && { delegation }) });
      return reply.status(201).send({
        lease_id: lease.id,
        backend: lease.backend,
        backend_type: backendType,
        role: lease.role,
        issued_at: toIso(lease.issued_at),
        expires_at: toIso(lease.expires_at),
        renewable: isRenewable(lease),
        delegation_id: lease.delegation_id,
        act: lease.act === null ? null : JSON.parse(lease.act),
        credential,
      });
    },
  );

  app.get<LeaseParams>(
    '/v1/leases/:id',
    { schema: { params: LeaseIdParams, response: { 200: LeaseRecord, ...upstreamErrorResponses } } },
    async (request) => leases.view(callerOf(request), request.params.id),
  );

  app.post<LeaseParams & { Body: RenewRequest | undefined }>(
    '/v1/leases/:id/renew',
    { schema: { params: LeaseIdParams, body: RenewRequest, response: { 200: RenewResponse, ...upstreamErrorResponses } }, config: LEASES_ONLY },
    async (request) => {
      const renewed = await leases.renew(callerOf(request), request.params.id, secondsToMs(request.body?.ttl_seconds));
      return { lease_id: renewed.id, expires_at: toIso(renewed.expires_at), renewable: isRenewable(renewed) };
    },
  );

  app.delete<LeaseParams>(
    '/v1/leases/:id',
    { schema: { params: LeaseIdParams, response: { 200: RevokeResponse, ...upstreamErrorResponses } }, config: LEASES_ONLY },
    async (request) => {
      const lease = await leases.revoke(callerOf(request), request.params.id);
      return { lease_id: lease.id, backend: lease.backend, state: lease.state, last_error: lease.last_error };
    },
  );
}
