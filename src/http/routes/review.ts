import type { FastifyInstance } from 'fastify';
import type { AuditQuery } from '../../review/audit-filter.js';
import type { ReviewReader } from '../../review/reader.js';
import type { ReviewSessions } from '../../review/sessions.js';
import { callerOf } from '../plugins/proof-auth.js';
import {
  AddressParams,
  AuditEventList,
  AuditListQuery,
  ChainStatus,
  errorResponses,
  IdentityList,
  IdentityListQuery,
  IdentityTimeline,
  LeaseList,
  LeaseListQuery,
  ReviewSession,
  ReviewSessionRequest,
} from '@tessera-broker/sdk/wire';

export interface ReviewRouteOptions {
  readonly reader: ReviewReader;
  readonly sessions: ReviewSessions;
  readonly publicUrl: string;
}

/**
 * The read-only review API (docs/PROTOCOL.md §9): GET routes for reviewers and admins, by proof
 * or by review session cookie, and the one POST that turns a proof into a login link.
 */
export async function reviewRoutes(app: FastifyInstance, { reader, sessions, publicUrl }: ReviewRouteOptions): Promise<void> {
  // Proof only: a session cannot mint further sessions, and no cookie reaches a POST.
  app.post(
    '/v1/review/sessions',
    {
      preValidation: app.proofAuth.requireRole('reviewer', 'admin'),
      schema: {
        body: ReviewSessionRequest,
        response: { 201: ReviewSession, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { code, expiresAt } = await sessions.createLoginCode(callerOf(request));
      return reply.status(201).send({ login_url: `${publicUrl}/ui/login?code=${code}`, expires_at: new Date(expiresAt).toISOString() });
    },
  );

  // Everything below only reads.
  app.register(async (reads) => {
    reads.addHook('preValidation', reads.reviewAuth.proofOrSession);

    reads.get<{ Querystring: IdentityListQuery }>(
      '/v1/review/identities',
      { schema: { querystring: IdentityListQuery, response: { 200: IdentityList, ...errorResponses } } },
      async (request) => ({ identities: await reader.identities(request.query) }),
    );

    reads.get<{ Params: AddressParams }>(
      '/v1/review/identities/:address/timeline',
      {
        schema: {
          params: AddressParams,
          response: { 200: IdentityTimeline, ...errorResponses },
        },
      },
      async (request) => reader.timeline(request.params.address),
    );

    reads.get<{ Querystring: LeaseListQuery }>(
      '/v1/review/leases',
      { schema: { querystring: LeaseListQuery, response: { 200: LeaseList, ...errorResponses } } },
      async (request) => {
        const { identity, ...filter } = request.query;
        return { leases: await reader.leases({ ...filter, ...(identity !== undefined && { address: identity }) }) };
      },
    );

    reads.get<{ Querystring: AuditQuery }>(
      '/v1/review/audit',
      { schema: { querystring: AuditListQuery, response: { 200: AuditEventList, ...errorResponses } } },
      async (request) => ({ events: await reader.audit(request.query) }),
    );

    reads.get('/v1/review/chain', { schema: { response: { 200: ChainStatus, ...errorResponses } } }, async () => reader.chainStatus());
  });
}
