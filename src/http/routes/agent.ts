import type { FastifyInstance } from 'fastify';
import type { Authority } from '../../identity/authority.js';
import type { IdentityService } from '../../identity/identities.js';
import { identityView } from '../../identity/identity.js';
import { callerOf } from '../plugins/proof-auth.js';
import { parseProofHeader } from '../../identity/proof.js';
import { CredentialResponse, EnrollRequest, EnrollResponse, errorResponses, IdentityView } from '@tessera-broker/sdk/wire';

export interface AgentRouteOptions {
  readonly identities: IdentityService;
  readonly authority: Authority;
}

/** Routes an identity calls for itself, authenticated by its own proof. */
export async function agentRoutes(app: FastifyInstance, { identities, authority }: AgentRouteOptions): Promise<void> {
  app.post<{ Body: EnrollRequest }>(
    '/v1/enroll',
    { preValidation: app.proofAuth.pendingIdentity, schema: { body: EnrollRequest, response: { 200: EnrollResponse, ...errorResponses } } },
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

  // A fresh credential under the current authority key (after an authority rotation), bound to the
  // key that signed this request (after an identity key rotation, the new one).
  app.post(
    '/v1/credentials',
    { preValidation: app.proofAuth.identity, schema: { response: { 200: CredentialResponse, ...errorResponses } } },
    async (request) => {
      const credential = await authority.issueCredential(callerOf(request), parseProofHeader(request.headers.authorization).kid);
      return { credential: credential.token, credential_expires_at: new Date(credential.expiresAt).toISOString() };
    },
  );

  app.get(
    '/v1/whoami',
    { preValidation: app.proofAuth.identity, schema: { response: { 200: IdentityView, ...errorResponses } } },
    async (request) => identityView(callerOf(request)),
  );
}
