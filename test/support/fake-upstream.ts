/**
 * Local stand-ins for the Stripe and OpenAI APIs. Each checks the API key it receives against the
 * real secret(s) it was started with, answers in the API's own shapes, and records every request so
 * tests can assert what reached the upstream (and what never did).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

export interface FakeUpstream {
  readonly url: string;
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

type Handler = (request: SeenRequest, response: ServerResponse) => void | Promise<void>;

export async function startFakeUpstream(handle: Handler): Promise<FakeUpstream> {
  const seen: SeenRequest[] = [];
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const entry: SeenRequest = {
      method: request.method ?? 'GET',
      path: request.url ?? '/',
      authorization: request.headers.authorization,
      headers: request.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    seen.push(entry);
    await handle(entry, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const sendJson = (response: ServerResponse, status: number, body: unknown): void => {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};

/** Stripe: Bearer secret key; form-encoded bodies; `{error: {type, message}}` on failure. */
export function startFakeStripe(secretKey: string): Promise<FakeUpstream> {
  return startFakeUpstream((request, response) => {
    if (request.authorization !== `Bearer ${secretKey}`) {
      return sendJson(response, 401, { error: { type: 'invalid_request_error', message: 'Invalid API Key provided' } });
    }
    const path = request.path.split('?')[0]!;
    if (request.method === 'POST' && path === '/v1/refunds') {
      const form = new URLSearchParams(request.body);
      return sendJson(response, 200, { id: `re_${request.body.length}`, object: 'refund', amount: Number(form.get('amount')), charge: form.get('charge'), status: 'succeeded' });
    }
    if (request.method === 'GET' && path.startsWith('/v1/charges/')) return sendJson(response, 200, { id: path.split('/').pop(), object: 'charge', amount: 9000 });
    if (request.method === 'GET' && ['/v1/balance', '/v1/customers'].includes(path)) return sendJson(response, 200, { object: path === '/v1/balance' ? 'balance' : 'list', data: [], has_more: false });
    return sendJson(response, 404, { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${request.method}: ${path})` } });
  });
}

export interface FakeOpenAI extends FakeUpstream {
  /** Service accounts by id, with their API keys: what the Admin API created and not yet deleted. */
  readonly serviceAccounts: Map<string, { name: string; key: string }>;
  /** Streamed completions whose client hung up before the last chunk. */
  readonly abandonedStreams: () => number;
  /** Chunks sent so far by streamed completions. */
  readonly chunksSent: () => number;
  /**
   * Between chunks, streams await `step()` instead of sleeping STREAM_GAP_MS (undefined: sleep
   * again), so a test can see each chunk before the next one is sent.
   */
  pace(step: (() => Promise<void>) | undefined): void;
}

/** Chunks of a streamed chat completion, sent this far apart. */
export const STREAM_CHUNKS = ['Hel', 'lo', ' wor', 'ld'];
export const STREAM_GAP_MS = 120;

/**
 * OpenAI: chat completions (plain and SSE-streamed), models, and the Admin API's project service
 * accounts. API calls accept `apiKey` or any live service-account key; admin calls only `adminKey`.
 */
export async function startFakeOpenAI(options: { apiKey: string; adminKey: string; projectId: string }): Promise<FakeOpenAI> {
  const serviceAccounts = new Map<string, { name: string; key: string }>();
  let nextId = 1;
  let abandonedStreams = 0;
  let chunksSent = 0;
  let step: (() => Promise<void>) | undefined;
  const accounts = `/v1/organization/projects/${options.projectId}/service_accounts`;
  const unauthorized = (response: ServerResponse) =>
    sendJson(response, 401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });

  const upstream = await startFakeUpstream(async (request, response) => {
    const path = request.path.split('?')[0]!;
    if (path.startsWith('/v1/organization/')) {
      if (request.authorization !== `Bearer ${options.adminKey}`) return unauthorized(response);
      if (request.method === 'POST' && path === accounts) {
        const id = `svc_acct_${nextId++}`;
        const key = `sk-svcacct-${id}-${Math.random().toString(36).slice(2)}`;
        const { name } = JSON.parse(request.body) as { name: string };
        serviceAccounts.set(id, { name, key });
        return sendJson(response, 200, { object: 'organization.project.service_account', id, name, role: 'member', created_at: 1, api_key: { object: 'organization.project.service_account.api_key', value: key, name: 'Secret Key', created_at: 1, id: `key_${id}` } });
      }
      if (request.method === 'GET' && path === accounts) {
        // One per page, to exercise pagination.
        const after = new URL(request.path, 'http://x').searchParams.get('after');
        const ids = [...serviceAccounts.keys()];
        const start = after ? ids.indexOf(after) + 1 : 0;
        const page = ids.slice(start, start + 1);
        return sendJson(response, 200, {
          object: 'list',
          data: page.map((id) => ({ object: 'organization.project.service_account', id, name: serviceAccounts.get(id)!.name, role: 'member', created_at: 1 })),
          first_id: page[0] ?? null,
          last_id: page.at(-1) ?? null,
          has_more: start + 1 < ids.length,
        });
      }
      if (request.method === 'DELETE' && path.startsWith(`${accounts}/`)) {
        const id = decodeURIComponent(path.slice(accounts.length + 1));
        if (!serviceAccounts.delete(id)) return sendJson(response, 404, { error: { message: 'not found', type: 'invalid_request_error', param: null, code: null } });
        return sendJson(response, 200, { object: 'organization.project.service_account.deleted', id, deleted: true });
      }
      return sendJson(response, 404, { error: { message: 'unknown admin route', type: 'invalid_request_error', param: null, code: null } });
    }

    const liveKeys = [options.apiKey, ...[...serviceAccounts.values()].map((account) => account.key)];
    if (!liveKeys.some((key) => request.authorization === `Bearer ${key}`)) return unauthorized(response);
    if (request.method === 'GET' && path === '/v1/models') return sendJson(response, 200, { object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model', created: 1, owned_by: 'openai' }] });
    if (request.method === 'POST' && path === '/v1/chat/completions') {
      const body = JSON.parse(request.body) as { model: string; stream?: boolean };
      if (!body.stream) {
        return sendJson(response, 200, {
          id: 'chatcmpl-1',
          object: 'chat.completion',
          created: 1,
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'Hello world' }, finish_reason: 'stop', logprobs: null }],
          usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
        });
      }
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      for (const [index, content] of STREAM_CHUNKS.entries()) {
        if (index > 0) await (step ? step() : new Promise((resolve) => setTimeout(resolve, STREAM_GAP_MS)));
        if (response.destroyed) return void abandonedStreams++;
        const chunk = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: body.model, choices: [{ index: 0, delta: { content }, finish_reason: null }] };
        response.write(`data: ${JSON.stringify(chunk)}\n\n`);
        chunksSent += 1;
      }
      response.end('data: [DONE]\n\n');
      return;
    }
    return sendJson(response, 404, { error: { message: 'unknown route', type: 'invalid_request_error', param: null, code: null } });
  });
  return { ...upstream, serviceAccounts, abandonedStreams: () => abandonedStreams, chunksSent: () => chunksSent, pace: (next) => (step = next) };
}
