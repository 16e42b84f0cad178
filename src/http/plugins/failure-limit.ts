import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { RejectionSummary } from '../../audit/rejection-summary.js';
import { TesseraError } from '../../errors.js';
import { type FailureLimit, rateLimitStore } from '../../limits/failure-limit.js';

export interface FailureLimitOptions {
  /** failed authentications per client address (TESSERA_AUTH_FAILURE_LIMIT / _WINDOW) */
  readonly limit: FailureLimit;
  readonly rejections: RejectionSummary;
}

/**
 * Only failures count: every 401 answer (a proof or session that did not authenticate) counts
 * against the client's address (IPv6 by /64, @fastify/rate-limit's key). An address past the limit
 * is answered 429 `rate_limited` with Retry-After before any work is done for it (no proof check,
 * no query, no audit write) until the window ends, so a junk flood cannot crowd out valid traffic.
 */
export const failureLimit = fp(async (app: FastifyInstance, { limit, rejections }: FailureLimitOptions) => {
  await app.register(rateLimit, { global: false, max: limit.settings.max, timeWindow: limit.settings.windowMs, store: rateLimitStore(limit) });
  const failures = app.createRateLimit();

  app.addHook('onRequest', async (request) => {
    const state = await failures(request, { increment: false });
    if (state.isAllowed || state.remaining > 0) return;
    rejections.record({ source: request.ip, action: 'request.rate_limited', reason: 'rate_limited', sample: { method: request.method, url: request.url } });
    throw new TesseraError('rate_limited', `Too many failed authentications from this address; retry in ${state.ttlInSeconds} s.`, { retryAfterSeconds: state.ttlInSeconds });
  });

  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode === 401) await failures(request);
  });
});
