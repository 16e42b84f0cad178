import type { FastifyInstance } from 'fastify';
import type { AuditQuery } from '../../review/audit-filter.js';
import type { ReviewReader } from '../../review/reader.js';
import type { ReviewSessions } from '../../review/sessions.js';
import { callerOf } from '../plugins/proof-auth.js';
import { AddressParams, errorResponses, IdentityList, IdentityListQuery, IdentityView, LeaseList, LeaseListQuery, LeaseRecord } from '@tessera-broker/sdk/wire';
import { auditEventSchema, auditEventsSchema, auditQuerySchema } from './review-schemas.js';

export interface ReviewRouteOptions {
  readonly reader: ReviewReader;
  readonly sessions: ReviewSessions;
  readonly publicUrl: string;
}

const chainStatusSchema = {
  type: 'object',
  required: ['ok', 'from', 'to', 'head', 'events', 'checkpoints', 'proofs', 'last_checkpoint', 'problem', 'checked_at'],
  properties: {
    ok: { type: 'boolean' },
    from: { type: 'integer' },
    to: { type: 'integer' },
    head: { type: 'object', properties: { seq: { type: 'integer' }, hash: { type: 'string' } } },
    events: { type: 'integer' },
    checkpoints: { type: 'integer' },
    proofs: { type: 'integer' },
    last_checkpoint: { type: ['object', 'null'], properties: { seq: { type: 'integer' }, at: { type: 'string' } } },
    problem: { type: ['object', 'null'], properties: { seq: { type: 'integer' }, code: { type: 'string' }, message: { type: 'string' } } },
    checked_at: { type: 'string' },
  },
} as const;

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
        body: { type: 'object', additionalProperties: false, properties: {} },
        response: {
          201: { type: 'object', required: ['login_url', 'expires_at'], properties: { login_url: { type: 'string' }, expires_at: { type: 'string' } } },
          ...errorResponses,
        },
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
          response: {
            200: {
              type: 'object',
              required: ['identity', 'leases', 'events', 'truncated'],
              properties: { identity: IdentityView, leases: { type: 'array', items: LeaseRecord }, events: { type: 'array', items: auditEventSchema }, truncated: { type: 'boolean' } },
            },
            ...errorResponses,
          },
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
      { schema: { querystring: auditQuerySchema, response: { 200: auditEventsSchema, ...errorResponses } } },
      async (request) => ({ events: await reader.audit(request.query) }),
    );

    reads.get('/v1/review/chain', { schema: { response: { 200: chainStatusSchema, ...errorResponses } } }, async () => reader.chainStatus());
  });
}
