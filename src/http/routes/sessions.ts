import type { FastifyInstance } from 'fastify';
import { errorResponses, SessionRequest, SessionResponse } from '@tessera-broker/sdk/wire';
import type { SessionRegistry } from '../../sessions/session-registry.js';
import { authenticatedOf } from '../plugins/proof-auth.js';

export interface SessionRouteOptions {
  readonly sessions: SessionRegistry;
}

/** Session keys (docs/PROTOCOL.md §3.1): registered in a request proven by the primary key. */
export async function sessionRoutes(app: FastifyInstance, { sessions }: SessionRouteOptions): Promise<void> {
  app.post<{ Body: SessionRequest }>(
    '/v1/sessions',
    { preValidation: app.proofAuth.primaryKey, schema: { body: SessionRequest, response: { 201: SessionResponse, ...errorResponses } } },
    async (request, reply) => {
      const session = await sessions.register(authenticatedOf(request), request.body.certificate);
      return reply.status(201).send({
        session_id: session.id,
        generation: session.generation,
        issued_at: new Date(session.issuedAt).toISOString(),
        expires_at: new Date(session.expiresAt).toISOString(),
      });
    },
  );
}
