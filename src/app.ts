import fastifySwagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { ErrorBody } from '@tessera-broker/sdk/wire';
import type { AuditSink } from './audit/audit-log.js';
import type { RejectionSummary } from './audit/rejection-summary.js';
import type { ChangeFeed } from './changes/change-feed.js';
import type { Clock } from './clock.js';
import { TesseraError } from './errors.js';
import type { ProofAuthenticator } from './identity/authenticator.js';
import type { Authority } from './identity/authority.js';
import type { IdentityService } from './identity/identities.js';
import { proxyTrust } from './http/client-address.js';
import { errorHandler } from './http/plugins/error-handler.js';
import { failureLimit } from './http/plugins/failure-limit.js';
import { proofAuth } from './http/plugins/proof-auth.js';
import { reviewAuth } from './http/plugins/review-auth.js';
import { loggedRequest } from './http/request-log.js';
import { adminBackendRoutes } from './http/routes/admin-backends.js';
import { adminGrantRoutes } from './http/routes/admin-grants.js';
import { adminLeaseRoutes } from './http/routes/admin-leases.js';
import { adminKeyRoutes } from './http/routes/admin-keys.js';
import { adminTrustRoutes } from './http/routes/admin-trust.js';
import { adminRoutes } from './http/routes/admin.js';
import { agentRoutes } from './http/routes/agent.js';
import { delegationRoutes } from './http/routes/delegations.js';
import { discoveryRoutes } from './http/routes/discovery.js';
import { leaseRoutes } from './http/routes/leases.js';
import { reviewRoutes } from './http/routes/review.js';
import { sessionRoutes } from './http/routes/sessions.js';
import { uiRoutes } from './http/routes/ui.js';
import { userDelegationRoutes } from './http/routes/user-delegations.js';
import { createLimitedServer, type ServerLimits } from './http/server-limits.js';
import { SessionCookie } from './http/session-cookie.js';
import type { LeaseSystem } from './leases/lease-system.js';
import { FailureLimit, type FailureLimitSettings } from './limits/failure-limit.js';
import { ReviewReader } from './review/reader.js';
import { ReviewSessions } from './review/sessions.js';
import type { WrappingKeyRotation } from './secrets/wrapping-key-rotation.js';
import type { SessionRegistry } from './sessions/session-registry.js';
import type { Store } from './store/database.js';
import { TrustService } from './trust/trust-service.js';
import { UserDelegations } from './trust/user-delegations.js';
import { UserTokenVerifier } from './trust/user-token-verifier.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route writes nothing a replica caches (leases only: src/changes/), so its response need not wait for the feed. */
    readonly writesNothingCached?: boolean;
  }
}

export interface AppDeps {
  readonly store: Store;
  readonly audit: AuditSink;
  readonly authority: Authority;
  readonly identities: IdentityService;
  readonly authenticator: ProofAuthenticator;
  /** session keys (docs/PROTOCOL.md §3.1) */
  readonly sessions: SessionRegistry;
  readonly leases: LeaseSystem;
  /** `POST /v1/admin/wrapping-key/rotate` (src/secrets/wrapping-key-rotation.ts, bound to the broker's key stores) */
  readonly rotateWrappingKey: (actor: string) => Promise<WrappingKeyRotation>;
  /** Changes by every broker on the database: /healthz reports it, writes wait for it (read-your-writes). */
  readonly changes: ChangeFeed;
  readonly clock: Clock;
  readonly publicUrl: string;
  readonly limits: ServerLimits;
  /** where anonymous rejections are counted (the authenticator's, so one event per window covers both) */
  readonly rejections: RejectionSummary;
  /** failed authentications allowed per client address and window */
  readonly authFailures: FailureLimitSettings;
  /** TESSERA_TRUSTED_PROXIES: peers whose X-Forwarded-For names the client (src/http/client-address.ts) */
  readonly trustedProxies: readonly string[];
  /** pino logger; none in tests. */
  readonly logger?: FastifyBaseLogger;
}

const MAX_BODY_BYTES = 64 * 1024;

/** The OpenAPI document's fixed part; paths come from the routes. No `servers`: it is the same for every broker (docs/openapi.json). */
const OPENAPI_BASE: FastifyDynamicSwaggerOptions['openapi'] = {
  openapi: '3.1.0',
  info: {
    title: 'Tessera broker API',
    version: '1',
    description: 'Proof-authenticated routes of the Tessera secrets broker; docs/PROTOCOL.md describes proofs, error codes and lease states.',
  },
  components: {
    securitySchemes: {
      proof: { type: 'http', scheme: 'Proof', description: '`Authorization: Proof <compact JWS>`: a fresh proof signed by the identity key, or by a session key it certified, for every request (docs/PROTOCOL.md §3).' },
    },
  },
  security: [{ proof: [] }],
};

/** One log line per request, with the request, when it completes: fastify's two lines cost a write each. */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}

/** Builds the broker's HTTP app without listening: main() listens, tests inject(). */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const logger = deps.logger?.child({}, { serializers: { req: loggedRequest } });
  const authFailures = new FailureLimit(deps.clock, deps.authFailures);
  const app = Fastify({
    bodyLimit: MAX_BODY_BYTES,
    // The same node server as the credential proxy's, so both cut slow clients alike.
    serverFactory: (handler) => createLimitedServer(deps.limits, handler),
    ...(logger ? { loggerInstance: logger } : { logger: false }),
    // request.ip: the socket's peer, or the client a trusted proxy names; none trusted by default.
    trustProxy: deps.trustedProxies.length > 0 ? proxyTrust(deps.trustedProxies) : false,
    // An address past its failure limit is answered 429 unlogged: a junk flood must not cost a log line a request.
    logController: new OneLinePerRequest({ disableRequestLogging: (request: FastifyRequest) => request.rateLimited }),
  });

  // Keep the exact body bytes: the proof's `bh` claim is a hash over them, not over re-serialised JSON.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    request.rawBody = body;
    if (body.length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse(body.toString('utf8')));
    } catch {
      const error = Object.assign(new Error('Request body is not valid JSON.'), { statusCode: 400 });
      done(error, undefined);
    }
  });
  // Every body is JSON (docs/PROTOCOL.md §3): any other type is refused before its proof is read, so
  // no body reaches a route without `bh` having covered its bytes (fastify would parse text/plain).
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', (_request, _payload, done) => {
    done(Object.assign(new Error('Request bodies must be application/json.'), { statusCode: 415 }), undefined);
  });
  // Fastify never reads a GET or HEAD body, so `bh` could not cover one: none may be sent.
  app.addHook('onRequest', async (request) => {
    const { 'content-length': length, 'transfer-encoding': chunked } = request.headers;
    if ((request.method === 'GET' || request.method === 'HEAD') && (chunked !== undefined || (length !== undefined && length !== '0'))) {
      throw new TesseraError('invalid_request', 'GET and HEAD requests must not carry a body.');
    }
  });

  // Collects every route's schema (the wire shapes of @tessera-broker/sdk/wire) into the OpenAPI
  // document served at /openapi.json; registered first so it sees every route.
  await app.register(fastifySwagger, { openapi: OPENAPI_BASE, refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) } });
  app.addSchema(ErrorBody);

  // A write's response waits until this replica's caches have taken in what it changed, so the
  // caller's next request here sees it (other replicas take it in on NOTIFY, within milliseconds).
  // A refusal after authentication may have committed a change too (a suspected clone's
  // suspension); one before it (a bad proof, a flood) changed nothing and must stay cheap.
  app.addHook('onSend', async (request, reply) => {
    if (request.method === 'GET' || request.method === 'HEAD' || (reply.statusCode >= 400 && request.identity === null) || request.routeOptions.config.writesNothingCached) return;
    await deps.changes.catchUp();
  });

  await app.register(errorHandler);
  await app.register(failureLimit, { limit: authFailures, rejections: deps.rejections });
  await app.register(proofAuth, { authenticator: deps.authenticator, audit: deps.audit, publicUrl: deps.publicUrl });
  await app.register(discoveryRoutes, { authority: deps.authority, leases: deps.leases.leases, changes: deps.changes, publicUrl: deps.publicUrl, sessionMaxLifetimeSeconds: deps.sessions.maxLifetimeSeconds });
  await app.register(agentRoutes, { identities: deps.identities, authority: deps.authority });
  await app.register(sessionRoutes, { sessions: deps.sessions });
  await app.register(adminRoutes, { identities: deps.identities, audit: deps.audit, store: deps.store, leases: deps.leases.leases, delegations: deps.leases.delegations, authority: deps.authority, publicUrl: deps.publicUrl });
  await app.register(adminKeyRoutes, { identities: deps.identities, authority: deps.authority, rotateWrappingKey: deps.rotateWrappingKey });
  await app.register(leaseRoutes, { issuer: deps.leases.issuer, leases: deps.leases.leases });
  await app.register(adminBackendRoutes, { backends: deps.leases.backends });
  await app.register(adminGrantRoutes, { grants: deps.leases.grants });
  await app.register(adminLeaseRoutes, { leases: deps.leases.leases, identities: deps.identities });
  await app.register(delegationRoutes, { delegations: deps.leases.delegations, identities: deps.identities });
  await app.register(adminTrustRoutes, { trust: new TrustService(deps.store, deps.audit, deps.clock) });
  // One verifier for the app's lifetime: it holds the issuers' JWKS caches.
  const verifier = new UserTokenVerifier(deps.store.repos.trustedIssuers, deps.clock);
  const userDelegations = new UserDelegations(verifier, deps.leases.delegations, deps.leases.backends, deps.audit, deps.clock);
  await app.register(userDelegationRoutes, { userDelegations });

  // The read-only review API and page (docs/PROTOCOL.md §9): cookie sessions reach nothing else.
  const sessions = new ReviewSessions(deps.store, deps.audit, deps.clock, deps.rejections);
  const cookie = new SessionCookie(deps.publicUrl);
  const reader = new ReviewReader({ store: deps.store, identities: deps.identities, leases: deps.leases.leases, delegations: deps.leases.delegations, authority: deps.authority, publicUrl: deps.publicUrl, clock: deps.clock });
  await app.register(reviewAuth, { sessions, cookie });
  await app.register(reviewRoutes, { reader, sessions, publicUrl: deps.publicUrl });
  await app.register(uiRoutes, { reader, sessions, cookie });
  return app;
}
