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
    let body: { error?: string; message?: string } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // not a broker error body; fall through with the status line
    }
    throw new BrokerRequestError(response.status, body.error ?? `http_${response.status}`, body.message ?? response.statusText);
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
  return (await readJson(response)) as Discovery;
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
