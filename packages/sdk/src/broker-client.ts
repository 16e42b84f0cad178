import { keyThumbprint } from './jws.js';
import { createProof, PROOF_SCHEME } from './proof.js';
import type { Signer } from './signers/signer.js';
import type { Discovery } from './wire/discovery.js';

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

/**
 * Talks to the broker as one identity: every request carries a fresh proof signed through the
 * identity's key store handle. Agents in other languages implement the same few steps (PROTOCOL.md).
 */
export class BrokerClient {
  private constructor(
    readonly baseUrl: string,
    readonly identityId: string,
    private readonly audience: string,
    private readonly signer: Signer,
  ) {}

  static async connect(brokerUrl: string, signer: Signer): Promise<BrokerClient> {
    const discovery = await fetchDiscovery(brokerUrl);
    return new BrokerClient(discovery.issuer, await keyThumbprint(signer.publicKey), discovery.proof_audience, signer);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = this.baseUrl + path;
    const payload = body === undefined ? '' : JSON.stringify(body);
    const proof = await createProof(this.signer, this.identityId, this.audience, { method, url, body: payload });
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
