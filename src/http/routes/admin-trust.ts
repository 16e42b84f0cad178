import type { FastifyInstance } from 'fastify';
import { toIso } from '../../leases/lease.js';
import type { IssuerProfile } from '../../trust/issuer-profile.js';
import { staticKids, type TrustService } from '../../trust/trust-service.js';
import { callerOf } from '../plugins/proof-auth.js';
import { errorResponses, IssuerList, IssuerQuery, IssuerRemoved, IssuerView, TrustIssuerRequest } from '@tessera-broker/sdk/wire';

const issuerView = (profile: IssuerProfile): IssuerView => ({
  issuer: profile.issuer,
  audience: profile.audience,
  algorithms: [...profile.algorithms],
  jwks_url: 'jwksUrl' in profile.keys ? profile.keys.jwksUrl : null,
  static_kids: staticKids(profile),
  required_claims: { ...profile.requiredClaims },
  created_at: toIso(profile.createdAt),
});

/** Trusted identity providers whose user tokens agents may present (admin, docs/PROTOCOL.md §13). */
export async function adminTrustRoutes(app: FastifyInstance, { trust }: { trust: TrustService }): Promise<void> {
  app.addHook('preValidation', app.proofAuth.requireRole('admin'));

  app.post<{ Body: TrustIssuerRequest }>(
    '/v1/admin/trust/issuers',
    { schema: { body: TrustIssuerRequest, response: { 201: IssuerView, ...errorResponses } } },
    async (request, reply) => {
      const { issuer, audience, jwks_url, jwks, algorithms, required_claims } = request.body;
      const profile = await trust.add(
        {
          issuer,
          audience,
          ...(jwks_url !== undefined && { jwksUrl: jwks_url }),
          ...(jwks !== undefined && { jwks }),
          ...(algorithms !== undefined && { algorithms }),
          ...(required_claims !== undefined && { requiredClaims: required_claims }),
        },
        callerOf(request).id,
      );
      return reply.status(201).send(issuerView(profile));
    },
  );

  app.get('/v1/admin/trust/issuers', { schema: { response: { 200: IssuerList, ...errorResponses } } }, async () => ({ issuers: (await trust.list()).map(issuerView) }));

  app.delete<{ Querystring: IssuerQuery }>(
    '/v1/admin/trust/issuers',
    { schema: { querystring: IssuerQuery, response: { 200: IssuerRemoved, ...errorResponses } } },
    async (request) => {
      await trust.remove(request.query.issuer, callerOf(request).id);
      return { issuer: request.query.issuer, removed: true };
    },
  );
}
