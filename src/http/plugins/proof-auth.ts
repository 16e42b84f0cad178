import type { FastifyInstance, FastifyRequest, preValidationAsyncHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import type { AuditSink } from '../../audit/audit-log.js';
import { TesseraError } from '../../errors.js';
import type { ProofAuthenticator } from '../../identity/authenticator.js';
import type { Identity, IdentityRole } from '../../identity/identity.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The identity whose proof authenticated this request; set by the proof-auth hooks (preValidation: authenticate before judging the body). */
    identity: Identity | null;
    /** Exact request body bytes: the proof's `bh` claim covers them. */
    rawBody: Buffer | null;
  }
  interface FastifyInstance {
    proofAuth: {
      /** Any enrolled, unrevoked identity. */
      readonly identity: preValidationAsyncHookHandler;
      /** Also identities that have not enrolled yet: only for redeeming a ticket. */
      readonly pendingIdentity: preValidationAsyncHookHandler;
      /** Identities holding one of the roles. */
      requireRole(...roles: IdentityRole[]): preValidationAsyncHookHandler;
    };
  }
}

export interface ProofAuthOptions {
  readonly authenticator: ProofAuthenticator;
  readonly audit: AuditSink;
  /** The broker's public base URL; `htu` must equal it followed by the request's path and query. */
  readonly publicUrl: string;
}

export const proofAuth = fp(async (app: FastifyInstance, options: ProofAuthOptions) => {
  app.decorateRequest('identity', null);
  app.decorateRequest('rawBody', null);

  const authenticate = (request: FastifyRequest, allowPending: boolean) =>
    options.authenticator.authenticate(
      {
        authorization: request.headers.authorization,
        method: request.method,
        url: options.publicUrl + request.url,
        body: request.rawBody ?? '',
      },
      { allowPending },
    );

  app.decorate('proofAuth', {
    identity: async (request: FastifyRequest) => {
      request.identity = await authenticate(request, false);
    },
    pendingIdentity: async (request: FastifyRequest) => {
      request.identity = await authenticate(request, true);
    },
    requireRole: (...roles: IdentityRole[]) =>
      async (request: FastifyRequest) => {
        const identity = await authenticate(request, false);
        if (!roles.includes(identity.role)) {
          await options.audit.append({
            actor: identity.id,
            action: 'request.forbidden',
            outcome: 'denied',
            identityId: identity.id,
            reason: 'forbidden',
            details: { method: request.method, route: request.routeOptions.url ?? request.url, required_roles: roles },
          });
          throw new TesseraError('forbidden', `This operation requires the ${roles.join(' or ')} role.`);
        }
        request.identity = identity;
      },
  });
});

/** The authenticated identity of a request that passed a proof-auth hook. */
export function callerOf(request: FastifyRequest): Identity {
  if (!request.identity) throw new TesseraError('internal', 'route is missing its proof-auth hook');
  return request.identity;
}
