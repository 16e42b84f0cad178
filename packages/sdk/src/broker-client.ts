import { keyThumbprint } from './jws.js';
import { createProof, PROOF_SCHEME } from './proof.js';
import { type LiveSession, SessionKeys, type SessionKeysOptions } from './sessions/session-keys.js';
import type { Signer } from './signers/signer.js';
import type { Discovery } from './wire/discovery.js';
import type { SessionResponse } from './wire/sessions.js';

/** An error response from the broker: `code` is the stable code of docs/PROTOCOL.md. */
export class BrokerRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'BrokerRequestError';
  }
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!response.ok) {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      // not a broker error body; fall through with the status line
    }
    // A broker error is {error: <code>, message}; other servers (the credential proxy answers in
    // the upstream's format, {error: {...}}) get the status line.
    const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
    if (typeof error === 'string') throw new BrokerRequestError(response.status, error, typeof message === 'string' ? message : response.statusText);
    throw new BrokerRequestError(response.status, `http_${response.status}`, `${response.status} ${response.statusText} from ${response.url}`);
  }
  return text ? JSON.parse(text) : undefined;
}

export async function fetchDiscovery(brokerUrl: string): Promise<Discovery> {
  const url = `${brokerUrl.replace(/\/+$/, '')}/.well-known/tessera-configuration`;
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new BrokerRequestError(0, 'broker_unreachable', `Cannot reach the broker at ${brokerUrl}: ${(error as Error).cause ?? error}`);
  }
  const discovery = response.ok ? ((await response.json().catch(() => undefined)) as Partial<Discovery> | undefined) : undefined;
  if (typeof discovery?.issuer !== 'string' || typeof discovery.proof_audience !== 'string') {
    // E.g. the credential proxy's port (the broker's port + 1), which refuses requests without a lease token.
    throw new BrokerRequestError(
      0,
      'broker_unreachable',
      `${brokerUrl} is not a Tessera broker: GET ${url} answered ${response.status} ${response.statusText}${response.ok ? ' without a discovery document' : ''}. ` +
        'Point --broker or TESSERA_URL at the broker API (TESSERA_PUBLIC_URL, by default http://127.0.0.1:8700), not at the credential proxy.',
    );
  }
  return discovery as Discovery;
}

/** Refusals of a session proof that a new session fixes (or, if the identity itself is refused, reports). */
const SESSION_REFUSALS = new Set(['session_expired', 'session_revoked', 'session_unknown']);

export interface ConnectOptions {
  /**
   * Sign requests with session keys (docs/PROTOCOL.md §3.1): the primary key signs one certificate
   * per session instead of every request. Default: off here (every request signed by the primary key).
   */
  readonly sessions?: Omit<SessionKeysOptions, 'lifetimeSeconds'> & { readonly lifetimeSeconds?: number };
}

/** Default session lifetime; the broker's maximum (discovery) caps it. */
export const DEFAULT_SESSION_LIFETIME_SECONDS = 15 * 60;

/**
 * Talks to the broker as one identity: every request carries a fresh proof signed through the
 * identity's key store handle, or through a session key the identity key certified. Agents in other
 * languages implement the same few steps (PROTOCOL.md).
 */
export class BrokerClient {
  readonly #sessions: SessionKeys | undefined;

  private constructor(
    readonly baseUrl: string,
    readonly identityId: string,
    private readonly audience: string,
    private readonly signer: Signer,
    sessions: ConnectOptions['sessions'],
    maxLifetimeSeconds: number | undefined,
  ) {
    if (sessions) {
      const wanted = sessions.lifetimeSeconds ?? DEFAULT_SESSION_LIFETIME_SECONDS;
      const lifetimeSeconds = maxLifetimeSeconds === undefined ? wanted : Math.min(wanted, maxLifetimeSeconds);
      const register = (certificate: string) => this.#send<SessionResponse>('POST', '/v1/sessions', { certificate }, undefined);
      this.#sessions = new SessionKeys(signer, identityId, register, { ...sessions, lifetimeSeconds });
    }
  }

  static async connect(brokerUrl: string, signer: Signer, options: ConnectOptions = {}): Promise<BrokerClient> {
    const discovery = await fetchDiscovery(brokerUrl);
    return new BrokerClient(discovery.issuer, await keyThumbprint(signer.publicKey), discovery.proof_audience, signer, options.sessions, discovery.session_max_lifetime_seconds);
  }

  /** Whether requests are signed by session keys. */
  get usesSessions(): boolean {
    return this.#sessions !== undefined;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    if (!this.#sessions) return this.#send<T>(method, path, body, undefined);
    const session = await this.#sessions.current();
    try {
      return await this.#send<T>(method, path, body, session);
    } catch (error) {
      // Refused before anything was done: safe to send again under a new session.
      if (!(error instanceof BrokerRequestError && SESSION_REFUSALS.has(error.code))) throw error;
      this.#sessions.discard(session);
      return this.#send<T>(method, path, body, await this.#sessions.current());
    }
  }

  /** Stops renewing sessions; the session key is dropped. */
  close(): void {
    this.#sessions?.close();
  }

  async #send<T>(method: string, path: string, body: unknown, session: LiveSession | undefined): Promise<T> {
    const url = this.baseUrl + path;
    const payload = body === undefined ? '' : JSON.stringify(body);
    const target = { method, url, body: payload };
    const proof = session
      ? await createProof(session.signer, this.identityId, this.audience, target, undefined, session.id)
      : await createProof(this.signer, this.identityId, this.audience, target);
    const headers: Record<string, string> = { authorization: `${PROOF_SCHEME} ${proof}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : payload });
    } catch (error) {
      throw new BrokerRequestError(0, 'broker_unreachable', `Cannot reach the broker at ${this.baseUrl}: ${(error as Error).cause ?? error}`);
    }
    return (await readJson(response)) as T;
  }
}
