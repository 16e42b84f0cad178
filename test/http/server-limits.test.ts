/**
 * Both listeners (API and credential proxy) cut slow clients and refuse connection floods
 * (src/http/server-limits.ts). Tiny timeouts, and assertions on what the client sees (a 408, a
 * closed connection), never on how long it took.
 */
import type { Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, parseHostPort } from '../../src/config/config.js';
import { createLimitedServer, type ServerLimits } from '../../src/http/server-limits.js';
import { type ApiCredential, auditEvents, type StripeOpenAIEnv, startStripeOpenAIEnv } from '../proxy/support.js';
import type { TestBroker } from '../support/broker.js';
import { type FakeUpstream, startFakeUpstream } from '../support/fake-upstream.js';
import { enrolledAgent, eventually } from '../support/lease-env.js';

/** Far beyond any timeout configured here: only a server that never cuts the client hits it. */
const GIVE_UP_MS = 10_000;

interface RawClient {
  readonly socket: Socket;
  /** Everything the server sent, once it has closed the connection. */
  readonly closed: Promise<string>;
}

/** A bare TCP connection, to send exactly the bytes (and the pauses) no HTTP client would. */
function rawClient(address: string): Promise<RawClient> {
  const { host, port } = parseHostPort(address);
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    const closed = new Promise<string>((done) => socket.once('close', () => done(received)));
    socket.once('connect', () => {
      socket.off('error', reject).on('error', () => undefined); // a reset is a close as well
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

/** What the server sent before closing, or a failure if it is still open after GIVE_UP_MS. */
async function closedByServer(client: RawClient): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the server still holds the connection after ${GIVE_UP_MS} ms`)), GIVE_UP_MS);
  });
  try {
    return await Promise.race([client.closed, giveUp]);
  } finally {
    clearTimeout(timer);
    client.socket.destroy();
  }
}

/** Sends a request line, then one header line every 50 ms for as long as the connection is open. */
async function dribbleHeaders(address: string, requestLine: string): Promise<string> {
  const client = await rawClient(address);
  client.socket.write(`${requestLine}\r\nhost: tessera\r\n`);
  const dribble = setInterval(() => client.socket.writable && client.socket.write('x-slow: 1\r\n'), 50);
  try {
    return await closedByServer(client);
  } finally {
    clearInterval(dribble);
  }
}

/** Sends complete headers announcing a 64-byte body, then only its first bytes. */
async function withholdBody(address: string, head: string, contentType = 'application/json'): Promise<string> {
  const client = await rawClient(address);
  client.socket.write(`${head}\r\nhost: tessera\r\ncontent-type: ${contentType}\r\ncontent-length: 64\r\n\r\namount=`);
  return closedByServer(client);
}

describe('slow clients are cut: headers and bodies', () => {
  const STREAM_CHUNKS = 8;
  const STREAM_GAP_MS = 250;
  let proxy: StripeOpenAIEnv;
  let env: TestBroker;
  let streaming: FakeUpstream;
  let stripe: ApiCredential;
  let stream: ApiCredential;

  beforeAll(async () => {
    // A response that takes several times the body timeout to stream.
    streaming = await startFakeUpstream(async (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      for (let chunk = 0; chunk < STREAM_CHUNKS; chunk++) {
        response.write(`chunk ${chunk}\n`);
        await new Promise((resolve) => setTimeout(resolve, STREAM_GAP_MS));
      }
      response.end();
    });
    proxy = await startStripeOpenAIEnv({ env: { TESSERA_HEADERS_TIMEOUT: '300ms', TESSERA_BODY_TIMEOUT: '500ms' } });
    env = proxy.env;
    await proxy.admin.expect(201, 'POST', '/v1/admin/backends', {
      name: 'slow',
      type: 'http',
      upstream_url: streaming.url,
      secret: 'slow-secret',
      scopes: { reader: [{ methods: ['GET'], path_prefix: '/stream' }] },
    });
    for (const [backend, role, constraints] of [['stripe', 'refunds:write', { max_amount: '5000' }], ['slow', 'reader', undefined]] as const) {
      await proxy.admin.expect(201, 'POST', '/v1/admin/grants', { subject: 'attr:team=payments', backend, role, max_ttl_seconds: 600, ...(constraints && { constraints }) });
    }
    const agent = await enrolledAgent(env, 'slow-bot@acme.local', { team: 'payments' });
    stripe = ((await agent.lease('stripe', 'refunds:write')) as unknown as { credential: ApiCredential }).credential;
    stream = ((await agent.lease('slow', 'reader')) as unknown as { credential: ApiCredential }).credential;
  });
  afterAll(async () => {
    await proxy?.close();
    await streaming?.close();
  });

  it('API: a withheld body gets 408 and the connection closed', async () => {
    expect(await withholdBody(env.config.listen, 'POST /v1/enroll HTTP/1.1')).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('API: dribbled headers get 408 and the connection closed', async () => {
    expect(await dribbleHeaders(env.config.listen, 'GET /v1/whoami HTTP/1.1')).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('proxy: a withheld body the scope check waits for gets 408 and the connection closed', async () => {
    const head = `POST /v1/refunds HTTP/1.1\r\nauthorization: Bearer ${stripe.api_key}`;
    expect(await withholdBody(env.config.proxyListen, head, 'application/x-www-form-urlencoded')).toMatch(/^HTTP\/1\.1 408 /);
    // The client's doing, audited as such: not a broker failure (reason `internal`, an error log line).
    const refusals = await eventually(async () => {
      const events = (await auditEvents(proxy.admin, 'proxy.refused')).filter((event) => event.details.path === '/v1/refunds');
      expect(events).toHaveLength(1);
      return events;
    });
    expect(refusals[0]!.reason).toBe('request_incomplete');
  });

  it('proxy: dribbled headers get 408 and the connection closed', async () => {
    expect(await dribbleHeaders(env.config.proxyListen, 'GET /v1/charges HTTP/1.1')).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('proxy: a response streaming for longer than the body timeout arrives whole', async () => {
    const client = new Client(stream.base_url);
    try {
      const reply = await client.request({ method: 'GET', path: '/stream', headers: { authorization: `Bearer ${stream.api_key}` } });
      expect(reply.statusCode).toBe(200);
      expect(await reply.body.text()).toBe(Array.from({ length: STREAM_CHUNKS }, (_, chunk) => `chunk ${chunk}\n`).join(''));
    } finally {
      await client.close();
    }
  });
});

describe('connections per client address', () => {
  const MAX = 3;
  const LIMITS: ServerLimits = { headersTimeoutMs: 10_000, bodyTimeoutMs: 30_000, keepAliveTimeoutMs: 60_000, maxConnections: 100, maxConnectionsPerAddress: MAX };
  let server: Server;
  let address: string;

  beforeAll(async () => {
    // The server both listeners are built on, with nothing else connecting to it.
    server = createLimitedServer(LIMITS, (_request, response) => response.writeHead(200, { 'content-length': '2' }).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  /** One keep-alive request on an open connection: true once answered, false if the server closed it instead. */
  function answered(client: RawClient): Promise<boolean> {
    client.socket.write('GET / HTTP/1.1\r\nhost: tessera\r\n\r\n');
    return Promise.race([
      new Promise<boolean>((resolve) => client.socket.once('data', (chunk: string) => resolve(chunk.startsWith('HTTP/1.1 200 ')))),
      client.closed.then(() => false),
    ]);
  }

  it(`connection ${MAX + 1} from one address is closed at accept; the others work; a closed one frees its slot`, async () => {
    const held = await Promise.all(Array.from({ length: MAX }, () => rawClient(address)));
    try {
      for (const client of held) expect(await answered(client)).toBe(true);

      expect(await closedByServer(await rawClient(address))).toBe('');
      expect(await answered(held[0]!)).toBe(true);

      // As soon as the server has seen one of them close, a new connection is served again.
      held.pop()!.socket.destroy();
      for (let attempt = 0; ; attempt++) {
        expect(attempt, 'a slot is freed').toBeLessThan(100);
        const candidate = await rawClient(address);
        held.push(candidate);
        if (await answered(candidate)) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      for (const client of held) client.socket.destroy();
    }
  });
});

describe('limit settings', () => {
  const load = (env: Record<string, string>) => () => loadConfig({ dataDir: '/nonexistent/tessera' }, env);

  it('defaults: seconds, not minutes', () => {
    expect(load({})().limits).toEqual({ headersTimeoutMs: 10_000, bodyTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, maxConnections: 1024, maxConnectionsPerAddress: 64 });
  });

  it('refuses a headers timeout beyond the body timeout, and bad values, naming the setting', () => {
    expect(load({ TESSERA_HEADERS_TIMEOUT: '1m' })).toThrow(/TESSERA_HEADERS_TIMEOUT: must not exceed TESSERA_BODY_TIMEOUT/);
    expect(load({ TESSERA_BODY_TIMEOUT: 'soon' })).toThrow(/TESSERA_BODY_TIMEOUT/);
    expect(load({ TESSERA_MAX_CONNECTIONS_PER_ADDRESS: '-1' })).toThrow(/TESSERA_MAX_CONNECTIONS_PER_ADDRESS/);
  });
});
