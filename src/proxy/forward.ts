/**
 * Forwards one request upstream over the backend's keep-alive pool and streams the response back
 * as it arrives (server-sent events chunk by chunk): nothing is buffered or re-serialised.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { upstreamPath, type SecretHeader, type UpstreamTarget } from '../backends/http-api/upstream-client.js';
import { TOKEN_HEADERS } from './lease-token.js';

/**
 * Headers with which frameworks let a request name another method or URL than its request line
 * (Express's method-override, Symfony, IIS URL Rewrite, ...): the upstream must act on the method
 * and path the scope check saw.
 */
const ROUTE_OVERRIDE_HEADERS = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-method',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'x-forwarded-uri',
  'x-forwarded-path',
  'x-forwarded-prefix',
];

/** Hop-by-hop headers (RFC 9110 §7.6.1; h2c's HTTP2-Settings): never forwarded, either way. */
export const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'http2-settings'] as const;

/** Plus what undici sets itself, the lease token and route overrides. */
const REQUEST_DROPPED = new Set<string>([...HOP_BY_HOP, 'host', 'expect', ...TOKEN_HEADERS, ...ROUTE_OVERRIDE_HEADERS]);
const RESPONSE_DROPPED = new Set<string>(HOP_BY_HOP);

/**
 * The agent's headers minus the dropped ones, plus the real secret. A Connection header names
 * nothing else to drop: the proxy refuses one naming any header but a hop-by-hop one
 * (request-shape.ts), so everything the scope check read is forwarded as it read it.
 */
export function upstreamHeaders(incoming: IncomingHttpHeaders, secret: SecretHeader): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const name of Object.keys(incoming)) {
    const value = incoming[name];
    if (value !== undefined && !REQUEST_DROPPED.has(name)) headers[name] = value;
  }
  headers[secret.name] = secret.value;
  return headers;
}

function responseHeaders(upstream: IncomingHttpHeaders): OutgoingHttpHeaders {
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
 * Resolves with the upstream status once the response has been passed to `response`; rejects if
 * the upstream fails (before headers, `response` is untouched and the caller answers instead).
 *
 * Written on undici's dispatch handler rather than pool.stream(): per call that saves an
 * AbortController, an async resource and a promise, and the controller it hands over pauses the
 * upstream when the agent reads slowly and aborts it when the agent hangs up.
 */
export function forward(target: UpstreamTarget, request: ForwardRequest, response: ServerResponse): Promise<number> {
  return new Promise((resolve, reject) => {
    target.pool.dispatch(
      { method: request.method as Dispatcher.HttpMethod, path: upstreamPath(target, request.url), headers: request.headers, body: request.body },
      new ForwardHandler(response, resolve, reject),
    );
  });
}

/** One forwarded call: the upstream response into the agent's; methods, not closures, per call. */
class ForwardHandler implements Dispatcher.DispatchHandler {
  #upstream: Dispatcher.DispatchController | undefined;
  #status = 0;
  readonly #onClose = () => this.#agentClosed();

  constructor(
    private readonly response: ServerResponse,
    private readonly resolve: (status: number) => void,
    private readonly reject: (error: Error) => void,
  ) {
    response.once('close', this.#onClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#upstream = controller;
    if (this.response.destroyed) this.#agentClosed();
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // informational (103 Early Hints): the final response follows
    this.#status = statusCode;
    this.response.writeHead(statusCode, responseHeaders(headers));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.response.write(chunk)) return;
    controller.pause();
    this.response.once('drain', () => controller.resume());
  }

  onResponseEnd(): void {
    this.response.end();
    this.response.off('close', this.#onClose);
    this.resolve(this.#status);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.response.off('close', this.#onClose);
    this.reject(error);
  }

  /** The agent hanging up cancels the upstream request (an abandoned stream costs nothing upstream). */
  #agentClosed(): void {
    if (!this.response.writableFinished) this.#upstream?.abort(new Error('the agent closed the connection'));
  }
}
