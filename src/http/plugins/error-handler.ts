import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ERROR_CODES, TesseraError } from '../../errors.js';

/** Maps every failure to `{error, message}` with the status from the error table. */
export const errorHandler = fp(async (app: FastifyInstance) => {
  app.setErrorHandler((error: FastifyError | TesseraError, request, reply) => {
    if (error instanceof TesseraError) {
      if (error.status === 401) reply.header('www-authenticate', `Proof error="${error.code}"`);
      if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
      return reply.status(error.status).send({ error: error.code, message: error.message });
    }
    if (error.validation) {
      return reply.status(400).send({ error: 'invalid_request', message: `Invalid request: ${error.message}` });
    }
    if (error.statusCode === 413) return reply.status(413).send({ error: 'payload_too_large', message: ERROR_CODES.payload_too_large.message });
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.status(400).send({ error: 'invalid_request', message: error.message });
    }
    request.log.error({ err: error }, 'unhandled error');
    return reply.status(500).send({ error: 'internal', message: ERROR_CODES.internal.message });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ error: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0]}.` });
  });
});
