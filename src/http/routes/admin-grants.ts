import type { FastifyInstance } from 'fastify';
import type { Grant, GrantService } from '../../leases/grant-service.js';
import { toIso } from '../../leases/lease.js';
import { callerOf } from '../plugins/proof-auth.js';
import { errorResponses, GrantIdParams, GrantList, GrantListQuery, GrantRequest, GrantRevoked, GrantView } from '@tessera-broker/sdk/wire';

const grantView = (grant: Grant): GrantView => ({
  grant_id: grant.id,
  subject: grant.subject,
  backend: grant.backend,
  role: grant.role,
  max_ttl_seconds: Math.floor(grant.max_ttl_ms / 1000),
  default_ttl_seconds: Math.floor(grant.default_ttl_ms / 1000),
  constraints: JSON.parse(grant.constraints) as Record<string, string>,
  required_user_claims: JSON.parse(grant.required_user_claims) as Record<string, string>,
  created_at: toIso(grant.created_at),
});

/** Who may lease what (admin). Deny by default: without a grant, no lease. */
export async function adminGrantRoutes(app: FastifyInstance, { grants }: { grants: GrantService }): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.post<{ Body: GrantRequest }>(
    '/v1/admin/grants',
    { schema: { body: GrantRequest, response: { 201: GrantView, ...errorResponses } } },
    async (request, reply) => {
      const { subject, backend, role, max_ttl_seconds, default_ttl_seconds, constraints, required_user_claims } = request.body;
      const grant = await grants.create(
        {
          subject,
          backend,
          role,
          maxTtlMs: max_ttl_seconds * 1000,
          ...(default_ttl_seconds !== undefined && { defaultTtlMs: default_ttl_seconds * 1000 }),
          ...(constraints !== undefined && { constraints }),
          ...(required_user_claims !== undefined && { requiredUserClaims: required_user_claims }),
        },
        callerOf(request).id,
      );
      return reply.status(201).send(grantView(grant));
    },
  );

  app.get<{ Querystring: GrantListQuery }>(
    '/v1/admin/grants',
    { schema: { querystring: GrantListQuery, response: { 200: GrantList, ...errorResponses } } },
    async (request) => ({ grants: (await grants.list(request.query)).map(grantView) }),
  );

  app.delete<{ Params: GrantIdParams }>(
    '/v1/admin/grants/:id',
    { schema: { params: GrantIdParams, response: { 200: GrantRevoked, ...errorResponses } } },
    async (request) => {
      await grants.revoke(request.params.id, callerOf(request).id);
      return { grant_id: request.params.id, revoked: true };
    },
  );
}
