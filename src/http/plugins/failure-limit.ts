import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { RejectionSummary } from '../../audit/rejection-summary.js';
import { TesseraError } from '../../errors.js';
import { addressKey, type FailureLimit } from '../../limits/failure-limit.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Past its address's failure limit on arrival: answered 429 and not logged. Set once per request by failureLimit. */
    rateLimited: boolean;
  }
}

export interface FailureLimitOptions {
  /** failed authentications per client address (TESSERA_AUTH_FAILURE_LIMIT / _WINDOW) */
  readonly limit: FailureLimit;
  readonly rejections: RejectionSummary;
}

/**
 * Only failures count: every 401 answer (a proof or session that did not authenticate) counts
 * against the client's address (IPv6 by /64). An address past the limit is answered 429
 * `rate_limited` with Retry-After before any work is done for it (no proof check, no query, no
 * audit write) until the window ends, so a junk flood cannot crowd out valid traffic.
 */
export const failureLimit = fp(async (app: FastifyInstance, { limit, rejections }: FailureLimitOptions) => {
  app.decorateRequest('rateLimited', false);

  app.addHook('onRequest', async (request) => {
    const retryAfterSeconds = limit.retryAfterSeconds(addressKey(request.ip));
    if (retryAfterSeconds === undefined) return;
    request.rateLimited = true;
    rejections.record({ source: request.ip, action: 'request.rate_limited', reason: 'rate_limited', sample: { method: request.method, url: request.url } });
    throw new TesseraError('rate_limited', `Too many failed authentications from this address; retry in ${retryAfterSeconds} s.`, { retryAfterSeconds });
  });

  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode === 401) limit.fail(addressKey(request.ip));
  });
});
