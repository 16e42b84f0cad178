import type { FastifyRequest } from 'fastify';

/**
 * A request as the log shows it: fastify's fields, with the URL's query string redacted. A query
 * can carry a secret (the one-time review login code, /ui/login?code=...), and logs are kept and
 * shipped far more widely than the secrets they would leak.
 */
export function loggedRequest(request: FastifyRequest) {
  const query = request.url.indexOf('?');
  return {
    method: request.method,
    url: query === -1 ? request.url : `${request.url.slice(0, query)}?[redacted]`,
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}
