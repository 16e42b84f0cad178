import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import fp from 'fastify-plugin';
import type { AuditSink } from '../../audit/audit-log.js';
import { runWithRequestProof } from '../../audit/request-proof.js';
import { TesseraError } from '../../errors.js';
import type { ProofAuthenticator } from '../../identity/authenticator.js';
import type { Identity, IdentityRole } from '../../identity/identity.js';
import type { KnownIdentity } from '../../identity/identity-cache.js';
import { PROOF_SCHEME } from '../../identity/proof.js';

/**
 * Callback-style on purpose: the rest of the request (later hooks, the handler) runs inside done(),
 * which is called within the proof's async scope, so audit events the caller causes keep its proof.
 */
export type ProofAuthHook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void;

declare module 'fastify' {
  interface FastifyRequest {
    /** The identity whose proof authenticated this request; set by the proof-auth hooks (preValidation: authenticate before judging the body). */
    identity: Identity | null;
    /** That identity with its keys as the authenticator checked them (registering a session needs them). */
    authenticated: KnownIdentity | null;
    /** Exact request body bytes: the proof's `bh` claim covers them. */
    rawBody: Buffer | null;
  }
  interface FastifyInstance {
    proofAuth: {
      /** Any enrolled, unrevoked identity. */
      readonly identity: ProofAuthHook;
      /** Also identities that have not enrolled yet: only for redeeming a ticket. */
      readonly pendingIdentity: ProofAuthHook;
      /** Any enrolled, unrevoked identity, proven by its primary key (not a session key): registering sessions. */
      readonly primaryKey: ProofAuthHook;
      /** Identities holding one of the roles. */
      requireRole(...roles: IdentityRole[]): ProofAuthHook;
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
  app.decorateRequest('authenticated', null);
  app.decorateRequest('rawBody', null);

  const authenticate = (request: FastifyRequest, allowPending: boolean, primaryKeyOnly = false) =>
    options.authenticator.authenticate(
      {
        authorization: request.headers.authorization,
        method: request.method,
        url: options.publicUrl + request.url,
        body: request.rawBody ?? '',
        source: request.ip,
      },
      { allowPending, primaryKeyOnly },
    );

  const withIdentity =
    (check: (request: FastifyRequest) => Promise<KnownIdentity>): ProofAuthHook =>
    (request, _reply, done) => {
      check(request).then(
        (known) => {
          request.identity = known.identity;
          request.authenticated = known;
          runWithRequestProof({ identityId: known.identity.id, proof: proofOf(request) }, () => done());
        },
        (error: FastifyError) => done(error),
      );
    };

  app.decorate('proofAuth', {
    identity: withIdentity((request) => authenticate(request, false)),
    pendingIdentity: withIdentity((request) => authenticate(request, true, true)),
    primaryKey: withIdentity((request) => authenticate(request, false, true)),
    requireRole: (...roles: IdentityRole[]) =>
      withIdentity(async (request) => {
        const known = await authenticate(request, false);
        const { identity } = known;
        if (!roles.includes(identity.role)) {
          await options.audit.append({
            actor: identity.id,
            action: 'request.forbidden',
            outcome: 'denied',
            identityId: identity.id,
            reason: 'forbidden',
            details: { method: request.method, route: request.routeOptions.url ?? request.url, required_roles: roles },
            proof: proofOf(request),
          });
          throw new TesseraError('forbidden', `This operation requires the ${roles.join(' or ')} role.`);
        }
        return known;
      }),
  });
});

/** The compact JWS of a request whose proof was verified (so the header is exactly `Proof <jws>`). */
function proofOf(request: FastifyRequest): string {
  return request.headers.authorization!.slice(PROOF_SCHEME.length + 1);
}

/** The authenticated identity of a request that passed a proof-auth hook. */
export function callerOf(request: FastifyRequest): Identity {
  return authenticatedOf(request).identity;
}

/** callerOf() with the identity's keys as its proof was checked against. */
export function authenticatedOf(request: FastifyRequest): KnownIdentity {
  if (!request.authenticated) throw new TesseraError('internal', 'route is missing its proof-auth hook');
  return request.authenticated;
}
