import type { FastifyInstance } from 'fastify';
import type { Authority } from '../../identity/authority.js';
import type { IdentityService } from '../../identity/identities.js';
import { identityView } from '../../identity/identity.js';
import { callerOf } from '../plugins/proof-auth.js';
import { errorResponses, identitySchema } from '../schemas.js';

export interface AgentRouteOptions {
  readonly identities: IdentityService;
  readonly authority: Authority;
}

/** Routes an identity calls for itself, authenticated by its own proof. */
export async function agentRoutes(app: FastifyInstance, { identities, authority }: AgentRouteOptions): Promise<void> {
  app.post<{ Body: { ticket: string } }>(
    '/v1/enroll',
    {
      preValidation: app.proofAuth.pendingIdentity,
      schema: {
        body: {
          type: 'object',
          required: ['ticket'],
          additionalProperties: false,
          properties: { ticket: { type: 'string', minLength: 10, maxLength: 128 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['identity', 'credential', 'credential_expires_at'],
            properties: { identity: identitySchema, credential: { type: 'string' }, credential_expires_at: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const enrolled = await identities.redeemTicket(callerOf(request), request.body.ticket);
      const credential = await authority.issueCredential(enrolled);
      return {
        identity: identityView(enrolled),
        credential: credential.token,
        credential_expires_at: new Date(credential.expiresAt).toISOString(),
      };
    },
  );

  app.get(
    '/v1/whoami',
    { preValidation: app.proofAuth.identity, schema: { response: { 200: identitySchema, ...errorResponses } } },
    async (request) => identityView(callerOf(request)),
  );
}
