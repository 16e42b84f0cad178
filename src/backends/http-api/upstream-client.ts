/**
 * The broker's own calls to an HTTP API (connection checks, OpenAI's Admin API): JSON in and out
 * over a keep-alive undici pool, failures mapped to BackendError. Never logs or echoes a header.
 */
import { Pool } from 'undici';
import { BackendError } from '../credential-backend.js';

export interface UpstreamTarget {
  /** Origin plus optional base path, e.g. https://api.example.com/v2, without a trailing slash. */
  readonly url: string;
  /** The base path request paths are appended to ('' or e.g. '/v2'). */
  readonly basePath: string;
  readonly pool: Pool;
}

export function upstreamTarget(url: string, connections = 128): UpstreamTarget {
  const parsed = new URL(url);
  const basePath = parsed.pathname.replace(/\/+$/, '');
  return { url: parsed.origin + basePath, basePath, pool: new Pool(parsed.origin, { connections, keepAliveTimeout: 30_000 }) };
}

/** The upstream path for a request path: the target's base path prepended. */
export const upstreamPath = (target: UpstreamTarget, path: string): string => target.basePath + path;

/** How a secret is presented upstream: header name (lower case) and whole value. */
export interface SecretHeader {
  readonly name: string;
  readonly value: string;
}

export interface JsonReply {
  readonly status: number;
  readonly body: unknown;
}

const RETRYABLE_STATUS = (status: number) => status === 429 || status >= 500;

export async function callJson(
  target: UpstreamTarget,
  operation: string,
  request: { method: 'GET' | 'POST' | 'DELETE'; path: string; auth: SecretHeader; body?: unknown },
): Promise<JsonReply> {
  let reply;
  try {
    reply = await target.pool.request({
      method: request.method,
      path: upstreamPath(target, request.path),
      headers: { [request.auth.name]: request.auth.value, accept: 'application/json', ...(request.body !== undefined && { 'content-type': 'application/json' }) },
      body: request.body === undefined ? null : JSON.stringify(request.body),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
  } catch (error) {
    throw new BackendError(`${operation}: ${new URL(target.url).origin} unreachable (${(error as { code?: string }).code ?? (error as Error).message})`, true);
  }
  const text = await reply.body.text();
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // A non-JSON answer (a proxy's error page) is kept as undefined; the status tells what happened.
  }
  return { status: reply.statusCode, body };
}

/** Fails unless the reply is a 2xx; 401/403 mean the root secret was rejected. */
export function expectSuccess(operation: string, reply: JsonReply): void {
  if (reply.status >= 200 && reply.status < 300) return;
  const reason = reply.status === 401 || reply.status === 403 ? 'the root secret was rejected' : 'the upstream refused';
  throw new BackendError(`${operation}: ${reason} (HTTP ${reply.status})`, RETRYABLE_STATUS(reply.status));
}
