/**
 * The credential proxy: its own listener (the broker's API also lives under /v1, and Stripe's SDK
 * has no base path), routing each request by its lease token. Per request, in order:
 *
 *  1. the token's lease, by one indexed lookup: active, unexpired, identity not revoked; an
 *     address that presented too many unknown tokens is refused before the lookup (429);
 *  2. the request's form (request-shape.ts: canonical path, parsable headers), then the request
 *     inside the lease's scope (preset + constraints), the body read only if a constraint needs
 *     it; refusals answer in the upstream's own error format;
 *  3. `proxy.request` audited and committed (group commit): if it cannot be written, nothing is
 *     forwarded;
 *  4. the real secret swapped in, forwarded over the backend's keep-alive pool, the response
 *     streamed back unbuffered; then `proxy.response` (status, duration) is audited with other
 *     outcomes within 100 ms (GroupCommitAudit.defer): nothing waits for it.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import type { AuditEvent, AuditSink } from '../audit/audit-log.js';
import type { RejectionSummary } from '../audit/rejection-summary.js';
import { errorReply, type ErrorFormat } from '../backends/http-api/error-format.js';
import { ProxyBackend } from '../backends/http-api/proxy-backend.js';
import { isRefusal, type Refusal } from '../backends/http-api/scopes.js';
import type { Clock } from '../clock.js';
import { sha256Base64url } from '../crypto/encoding.js';
import type { ErrorCode } from '../errors.js';
import { clientAddress, type ProxyTrust, proxyTrust } from '../http/client-address.js';
import { createLimitedServer, type ServerLimits } from '../http/server-limits.js';
import type { BackendService } from '../leases/backend-service.js';
import { leaseRoleRefusal } from '../leases/lease.js';
import { addressKey, type FailureLimit } from '../limits/failure-limit.js';
import type { Store } from '../store/database.js';
import type { ProxiedLease } from '../store/repositories/leases.js';
import { forward, upstreamHeaders } from './forward.js';
import { GroupCommitAudit } from './group-commit-audit.js';
import { leaseToken } from './lease-token.js';
import { hasBody, readBody } from './request-body.js';
import { requestFormProblem, tokenHeaderProblem } from './request-shape.js';

export interface CredentialProxyDeps {
  /** The per-call lease lookup (repos.leases, on Store.reader) and the audit batches' transactions. */
  readonly store: Pick<Store, 'repos' | 'transaction'>;
  readonly audit: AuditSink;
  readonly clock: Clock;
  readonly backends: BackendService;
  readonly limits: ServerLimits;
  /** where refusals naming no lease are counted (anyone can send those) */
  readonly rejections: RejectionSummary;
  /** refusals of missing or unknown tokens allowed per client address and window */
  readonly tokenFailures: FailureLimit;
  /** TESSERA_TRUSTED_PROXIES: peers whose X-Forwarded-For names the client (src/http/client-address.ts) */
  readonly trustedProxies: readonly string[];
  readonly logger?: FastifyBaseLogger;
}

/** Before the backend is known (no or unknown token): OpenAI's shape, which Stripe's SDK also reads. */
const DEFAULT_FORMAT: ErrorFormat = 'openai';

/** What is known about a call so far; the audit details (the query string is not audited). */
interface Call {
  /** the client's address */
  readonly source: string;
  readonly method: string;
  readonly path: string;
  /** Without its `?`; '' for none. */
  readonly query: string;
  readonly started: number;
  /** sha256 (base64url) of the lease token presented, as leases.token_hash stores it: refusals name it. */
  tokenHash: string | undefined;
  lease?: ProxiedLease;
  format: ErrorFormat;
}

class ProxyRefusal extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export class CredentialProxy {
  readonly #server: Server;
  readonly #audit: GroupCommitAudit;
  readonly #trust: ProxyTrust;

  constructor(private readonly deps: CredentialProxyDeps) {
    this.#audit = new GroupCommitAudit(deps.store, deps.audit);
    this.#trust = proxyTrust(deps.trustedProxies);
    this.#server = createLimitedServer(deps.limits, (request, response) => void this.#handle(request, response), { keepAlive: true, noDelay: true });
  }

  /** Resolves with the port bound (the OS picks one for port 0). */
  listen(address: { host: string; port: number }): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(address.port, address.host, () => {
        this.#server.off('error', reject);
        resolve((this.#server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting, ends idle keep-alive connections and waits for pending audit writes. */
  /** Resolves once the audit events of every call so far are written (outcomes are written late). */
  auditDrained(): Promise<void> {
    return this.#audit.drained();
  }

  async close(): Promise<void> {
    if (this.#server.listening) {
      const closed = new Promise((resolve) => this.#server.close(resolve));
      this.#server.closeIdleConnections();
      await closed;
    }
    await this.#audit.drained();
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = request.url ?? '/';
    const query = url.indexOf('?');
    const call: Call = {
      source: clientAddress(request, this.#trust),
      method: request.method ?? 'GET',
      path: query === -1 ? url : url.slice(0, query),
      query: query === -1 ? '' : url.slice(query + 1),
      started: performance.now(),
      tokenHash: undefined,
      format: DEFAULT_FORMAT,
    };
    try {
      const backend = await this.#authorize(request, call);
      const body = await this.#inspect(request, call, backend);
      await this.#audit.append(this.#event(call, 'proxy.request', 'success')).catch((error: unknown) => {
        this.deps.logger?.error({ err: error }, 'credential proxy: audit write failed; call not forwarded');
        throw new ProxyRefusal('internal', 'The broker could not record this call, so it was not forwarded.');
      });
      await this.#forward(request, response, call, backend, body);
    } catch (error) {
      await this.#refuse(response, call, error);
    }
  }

  /** Steps 1 and 2 without the body: the lease behind the token and the route in its scope. */
  async #authorize(request: IncomingMessage, call: Call): Promise<ProxyBackend> {
    const retryAfter = this.deps.tokenFailures.retryAfterSeconds(addressKey(call.source));
    if (retryAfter !== undefined) throw new ProxyRefusal('rate_limited', `Too many unknown lease tokens from this address; retry in ${retryAfter} s.`, retryAfter);
    invalidIf(tokenHeaderProblem(request.headers));
    const token = leaseToken(request.headers);
    if (token === undefined) throw new ProxyRefusal('lease_token_invalid', 'No lease token: send it as the API key (Authorization: Bearer).');
    call.tokenHash = sha256Base64url(token);
    const lease = await this.deps.store.repos.leases.findByTokenHash(call.tokenHash);
    if (!lease) throw new ProxyRefusal('lease_token_invalid');
    call.lease = lease;
    const backend = await this.deps.backends.instance(lease.backend).catch(() => {
      throw new ProxyRefusal('backend_unavailable', `Backend ${lease.backend} cannot be opened.`);
    });
    if (!(backend instanceof ProxyBackend)) throw new ProxyRefusal('lease_token_invalid');
    call.format = backend.errorFormat;
    if (lease.state !== 'active') throw new ProxyRefusal('lease_token_inactive', `Lease ${lease.id} is ${lease.state}.`);
    if (lease.expires_at <= this.deps.clock.now()) throw new ProxyRefusal('lease_token_inactive', `Lease ${lease.id} has expired.`);
    if (lease.identity_status === 'suspended') throw new ProxyRefusal('identity_suspended', 'The identity holding this lease is suspended (a second copy of the agent was suspected).');
    if (lease.identity_status !== 'active') throw new ProxyRefusal('identity_revoked', 'The identity holding this lease has been revoked.');
    // Leases issued to an admin or reviewer before only agents could lease are not honoured either.
    const roleRefusal = leaseRoleRefusal({ role: lease.identity_role });
    if (roleRefusal) throw new ProxyRefusal(roleRefusal.code, roleRefusal.message);
    invalidIf(requestFormProblem(call.path, request.headers));
    return backend;
  }

  /** The rest of step 2: the body, read only if the scope must look into it. */
  async #inspect(request: IncomingMessage, call: Call, backend: ProxyBackend): Promise<Buffer | IncomingMessage | null> {
    const verdict = backend.scope(call.lease!.role, call.lease!.constraints).check(call.method, call.path, call.query, request.headers);
    if (isRefusal(verdict)) throw refusalOf(verdict);
    if (verdict === null) return hasBody(request) ? request : null;
    // A body cut by the body timeout or a client that went away is the client's doing, not a broker failure.
    const body = await readBody(request).catch(() => {
      throw new ProxyRefusal('request_incomplete');
    });
    if (body === undefined) throw new ProxyRefusal('payload_too_large', 'The request body is too large for the scope check.');
    const refusal = verdict(body);
    if (refusal) throw refusalOf(refusal);
    return body;
  }

  async #forward(request: IncomingMessage, response: ServerResponse, call: Call, backend: ProxyBackend, body: Buffer | IncomingMessage | null): Promise<void> {
    let status: number;
    try {
      status = await forward(backend.target, { method: call.method, url: request.url!, headers: upstreamHeaders(request.headers, backend.secretHeader), body }, response);
    } catch (error) {
      if (!response.headersSent) throw new ProxyRefusal('backend_unavailable', `The upstream could not be reached (${(error as { code?: string }).code ?? 'error'}).`);
      response.destroy();
      status = response.statusCode;
    }
    this.#audit.defer(this.#event(call, 'proxy.response', status < 500 ? 'success' : 'failure', status)).catch((error: unknown) => {
      this.deps.logger?.error({ err: error }, 'credential proxy: recording a call outcome failed');
    });
  }

  async #refuse(response: ServerResponse, call: Call, error: unknown): Promise<void> {
    const refusal = error instanceof ProxyRefusal ? error : new ProxyRefusal('internal');
    if (!(error instanceof ProxyRefusal)) this.deps.logger?.error({ err: error }, 'credential proxy: request failed');
    const reply = errorReply(call.format, refusal.code, refusal.message || undefined);
    if (call.lease) {
      // Refused calls were never forwarded; their record must not hold up the answer if the audit is down.
      await this.#audit
        .append(this.#event(call, 'proxy.refused', 'denied', reply.status, refusal.code))
        .catch((auditError: unknown) => this.deps.logger?.error({ err: auditError }, 'credential proxy: recording a refusal failed'));
    } else {
      // No lease named: anyone can send these, so they are counted (and limited) per address.
      if (refusal.code === 'lease_token_invalid') this.deps.tokenFailures.fail(addressKey(call.source));
      this.deps.rejections.record({
        source: call.source,
        action: 'proxy.refused',
        reason: refusal.code,
        sample: { method: call.method, path: call.path, token_sha256: call.tokenHash ?? null },
      });
    }
    if (response.headersSent) return void response.destroy();
    const headers = refusal.retryAfterSeconds === undefined ? reply.headers : { ...reply.headers, 'retry-after': String(refusal.retryAfterSeconds) };
    response.writeHead(reply.status, headers).end(reply.body);
  }

  #event(call: Call, action: string, outcome: AuditEvent['outcome'], status?: number, reason?: string): AuditEvent {
    // Calls naming no lease are never events of their own (#refuse counts them).
    const lease = call.lease!;
    const duration_ms = Math.round((performance.now() - call.started) * 100) / 100;
    // Members in canonical (sorted) order, so the audit log's encoder need not sort them. The path
    // only: a query string may carry data the audit log should not keep.
    let details: Record<string, unknown> = { backend: lease.backend, duration_ms, lease_id: lease.id, method: call.method, path: call.path, role: lease.role };
    // A delegated lease's calls name the chain they act under (`act` sorts first).
    if (lease.act !== null) details = { act: JSON.parse(lease.act) as unknown, ...details };
    if (status !== undefined) details.status = status;
    // Refusals (the events with a reason) name the presented token by its hash, never the token
    // itself, as leases.token_hash and the summaries of unknown tokens do.
    if (reason !== undefined && call.tokenHash !== undefined) details.token_sha256 = call.tokenHash;
    return {
      actor: lease.identity_id,
      action,
      outcome,
      identityId: lease.identity_id,
      ...(reason && { reason }),
      details,
      proof: null,
    };
  }
}

const refusalOf = (refusal: Refusal) => new ProxyRefusal(refusal.code, refusal.message);

function invalidIf(problem: string | undefined): void {
  if (problem !== undefined) throw new ProxyRefusal('invalid_request', problem);
}
