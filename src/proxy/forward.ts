/**
 * Forwards one request upstream over the backend's keep-alive pool and streams the response back
 * as it arrives (server-sent events chunk by chunk): nothing is buffered or re-serialised.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { upstreamPath, type SecretHeader, type UpstreamTarget } from '../backends/http-api/upstream-client.js';
import { TOKEN_HEADERS } from './lease-token.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and what undici sets itself; plus the lease token. */
const REQUEST_DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'expect', ...TOKEN_HEADERS]);
const RESPONSE_DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

/** The agent's headers minus hop-by-hop ones and its lease token, plus the real secret. */
export function upstreamHeaders(incoming: IncomingHttpHeaders, secret: SecretHeader): Record<string, string | string[]> {
  const named = connectionNamed(incoming.connection);
  const headers: Record<string, string | string[]> = {};
  for (const name of Object.keys(incoming)) {
    const value = incoming[name];
    if (value !== undefined && !REQUEST_DROPPED.has(name) && !named?.has(name)) headers[name] = value;
  }
  headers[secret.name] = secret.value;
  return headers;
}

/** Header names the Connection header lists (hop-by-hop); no set for none or the usual `keep-alive` (dropped anyway). */
function connectionNamed(connection: string | undefined): Set<string> | undefined {
  if (connection === undefined || connection === 'keep-alive') return undefined;
  return new Set(connection.split(',').map((name) => name.trim().toLowerCase()));
}

function responseHeaders(upstream: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const name of Object.keys(upstream)) {
    const value = upstream[name];
    if (value !== undefined && !RESPONSE_DROPPED.has(name)) headers[name] = value;
  }
  return headers;
}

export interface ForwardRequest {
  readonly method: string;
  /** Path and query as the agent sent them. */
  readonly url: string;
  readonly headers: Record<string, string | string[]>;
  /** The buffered body if a scope check read it, else the request stream itself; null when there is none. */
  readonly body: Buffer | IncomingMessage | null;
}

/**
 * Resolves with the upstream status once the response has been streamed to `response`; rejects if
 * the upstream fails (before headers, `response` is untouched and the caller answers instead).
 */
export async function forward(target: UpstreamTarget, request: ForwardRequest, response: ServerResponse): Promise<number> {
  // The agent hanging up cancels the upstream request (an abandoned stream costs nothing upstream).
  const abort = new AbortController();
  const onClose = () => {
    if (!response.writableFinished) abort.abort();
  };
  response.once('close', onClose);
  let status = 0;
  try {
    await target.pool.stream(
      { method: request.method as 'GET', path: upstreamPath(target, request.url), headers: request.headers, body: request.body, signal: abort.signal },
      ({ statusCode, headers }) => {
        status = statusCode;
        response.writeHead(statusCode, responseHeaders(headers));
        return response;
      },
    );
  } finally {
    response.off('close', onClose);
  }
  return status;
}
