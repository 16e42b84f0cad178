import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { REVIEW_ROLES, type ReviewSession, type ReviewSessions } from '../../review/sessions.js';
import type { SessionCookie } from '../session-cookie.js';
import type { ProofAuthHook } from './proof-auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The review session whose cookie authenticated this request; set by reviewAuth.session. */
    reviewSession: ReviewSession | null;
  }
  interface FastifyInstance {
    reviewAuth: {
      /** The review session cookie only: the review page, which browsers reach without proofs. */
      readonly session: ProofAuthHook;
      /** A reviewer or admin proof (the CLI), else the session cookie (the page): read-only routes only. */
      readonly proofOrSession: ProofAuthHook;
    };
  }
}

export interface ReviewAuthOptions {
  readonly sessions: ReviewSessions;
  readonly cookie: SessionCookie;
}

/**
 * Cookie authentication for read-only review routes. Every other route authenticates with proofs
 * alone and never looks at cookies, so a session (or a cross-site request riding on one) cannot
 * reach any mutating or admin route: no CSRF surface.
 */
export const reviewAuth = fp(async (app: FastifyInstance, { sessions, cookie }: ReviewAuthOptions) => {
  app.decorateRequest('reviewSession', null);
  const byProof = app.proofAuth.requireRole(...REVIEW_ROLES);

  const session: ProofAuthHook = (request: FastifyRequest, _reply, done) => {
    sessions.authenticate(cookie.read(request.headers.cookie)).then(
      (found) => {
        request.reviewSession = found;
        request.identity = found.identity;
        done();
      },
      (error: FastifyError) => done(error),
    );
  };

  app.decorate('reviewAuth', {
    session,
    proofOrSession: (request, reply, done) => (request.headers.authorization === undefined ? session : byProof)(request, reply, done),
  });
});
