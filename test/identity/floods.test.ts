import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProof, PROOF_SCHEME } from '../../src/identity/proof.js';
import type { Signer } from '../../src/keys/key-store.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { rejectionMark, rejectionsSince } from '../support/rejections.js';

interface AuditRow {
  action: string;
  reason: string | null;
  identity_id: string | null;
  details: Record<string, unknown>;
}

const AUTH_FAILURE_LIMIT = 5;
const TICKET_FAILURE_LIMIT = 3;
const WINDOW_MS = 10_000;

/** Junk proofs, unknown tokens and bad tickets: anonymous ones are counted, floods are cut off (src/limits/). */
describe('floods of rejected requests', () => {
  let env: TestBroker;
  /** What the broker's request log said, line by line. */
  const logged: { msg: string; req?: { remoteAddress?: string } }[] = [];
  beforeAll(async () => {
    env = await startTestBroker({
      logger: pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line) as (typeof logged)[number]) }),
      env: {
        TESSERA_AUTH_FAILURE_LIMIT: String(AUTH_FAILURE_LIMIT),
        TESSERA_AUTH_FAILURE_WINDOW: `${WINDOW_MS / 1000}s`,
        TESSERA_TICKET_FAILURE_LIMIT: String(TICKET_FAILURE_LIMIT),
        TESSERA_TICKET_FAILURE_WINDOW: `${WINDOW_MS / 1000}s`,
      },
    });
  });
  afterAll(() => env?.close());

  /** Moves the broker's clock to the start of the next limit window. */
  const nextWindow = () => env.clock.advance(WINDOW_MS - (env.clock.now() % WINDOW_MS));

  const proofFor = (signer: Signer, kid: string, method: string, path: string, body = '') =>
    createProof(signer, kid, env.url, { method, url: env.url + path, body }, Math.floor(env.clock.now() / 1000));

  /** One request through fastify's inject, from `source`. */
  async function inject(source: string, method: 'GET' | 'POST', path: string, proof?: string, body?: string) {
    const response = await env.broker.app.inject({
      method,
      url: path,
      remoteAddress: source,
      headers: { ...(proof !== undefined && { authorization: `${PROOF_SCHEME} ${proof}` }), ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { payload: body }),
    });
    return { status: response.statusCode, error: (response.json() as { error?: string }).error, retryAfter: response.headers['retry-after'] };
  }

  async function audit(action: string): Promise<AuditRow[]> {
    return (await env.admin.request<{ events: AuditRow[] }>('GET', `/v1/admin/audit?action=${action}&limit=1000`)).events;
  }

  let seq = 0;
  async function pendingAgent() {
    const provisioned = await env.provision(`flood-${++seq}@acme.local`);
    return { ...provisioned, signer: await env.keyStores.signer(provisioned.key_uri) };
  }

  async function enroll(source: string, agent: Awaited<ReturnType<typeof pendingAgent>>, ticket = agent.ticket) {
    const body = JSON.stringify({ ticket });
    return inject(source, 'POST', '/v1/enroll', await proofFor(agent.signer, agent.identity_id, 'POST', '/v1/enroll', body), body);
  }

  it('writes N junk proofs from one address as one summary event, and an identified rejection as its own event', async () => {
    nextWindow();
    const mark = await rejectionMark(env);
    const before = (await audit('proof.rejected')).length;
    const junk = AUTH_FAILURE_LIMIT - 1;
    for (let i = 0; i < junk; i += 1) expect(await inject('10.1.0.1', 'GET', '/v1/whoami', 'not-a-jws')).toMatchObject({ status: 401, error: 'proof_malformed' });
    expect(await inject('10.1.0.2', 'GET', '/v1/whoami', `x.${Buffer.from('{}').toString('base64url')}.y`)).toMatchObject({ status: 401 });
    expect(await inject('10.1.0.2', 'GET', '/v1/whoami')).toMatchObject({ status: 401, error: 'proof_missing' });

    // Identified: a good signature, replayed.
    const agent = await pendingAgent();
    expect((await enroll('10.1.0.3', agent)).status).toBe(200);
    const proof = await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami');
    expect((await inject('10.1.0.3', 'GET', '/v1/whoami', proof)).status).toBe(200);
    expect(await inject('10.1.0.3', 'GET', '/v1/whoami', proof)).toMatchObject({ status: 401, error: 'proof_replayed' });

    // Only the identified rejection has an event of its own.
    expect((await audit('proof.rejected')).slice(before)).toMatchObject([{ reason: 'proof_replayed', identity_id: agent.identity_id }]);
    // The anonymous ones are counted: one summary (two if the broker's window timer fell in between).
    const { summaries, counts } = await rejectionsSince(env, mark);
    expect(summaries).toBeLessThanOrEqual(2);
    expect(counts).toEqual([
      { source: '10.1.0.1', action: 'proof.rejected', reason: 'proof_malformed', count: junk, sample: { method: 'GET', url: `${env.url}/v1/whoami`, claimed_kid: null } },
      expect.objectContaining({ source: '10.1.0.2', action: 'proof.rejected', reason: 'proof_malformed', count: 1 }),
      expect.objectContaining({ source: '10.1.0.2', action: 'proof.rejected', reason: 'proof_missing', count: 1 }),
    ]);
  });

  it('answers 429 rate_limited with Retry-After once an address failed too often; other addresses and valid proofs go on', async () => {
    nextWindow();
    const mark = await rejectionMark(env);
    const agent = await pendingAgent();
    expect((await enroll('10.2.0.9', agent)).status).toBe(200);
    for (let i = 0; i < AUTH_FAILURE_LIMIT; i += 1) expect((await inject('10.2.0.1', 'GET', '/v1/whoami', 'junk')).status).toBe(401);
    const requestLines = () => logged.filter((line) => line.req?.remoteAddress === '10.2.0.1').length;
    const linesBefore = requestLines();
    expect(linesBefore).toBeGreaterThan(0);
    const limited = await inject('10.2.0.1', 'GET', '/v1/whoami', 'junk');
    expect(limited).toMatchObject({ status: 429, error: 'rate_limited' });
    // Refused without a request log line: a flood must not cost the broker two log writes a request.
    expect(requestLines()).toBe(linesBefore);
    expect(Number(limited.retryAfter)).toBeGreaterThan(0);
    expect(Number(limited.retryAfter)).toBeLessThanOrEqual(WINDOW_MS / 1000);
    // Valid traffic from that address waits too: it is refused before any work is done.
    expect((await inject('10.2.0.1', 'GET', '/v1/whoami', await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami'))).status).toBe(429);
    // Another address, and successes, are not counted against it.
    for (let i = 0; i < AUTH_FAILURE_LIMIT + 2; i += 1) {
      expect((await inject('10.2.0.2', 'GET', '/v1/whoami', await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami'))).status).toBe(200);
    }
    expect((await inject('10.2.0.2', 'GET', '/healthz')).status).toBe(200);

    nextWindow();
    expect((await inject('10.2.0.1', 'GET', '/v1/whoami', await proofFor(agent.signer, agent.identity_id, 'GET', '/v1/whoami'))).status).toBe(200);
    expect((await rejectionsSince(env, mark)).counts).toContainEqual(expect.objectContaining({ source: '10.2.0.1', action: 'request.rate_limited', reason: 'rate_limited', count: 2 }));
  });

  it('limits failed ticket redemptions per identity, whatever the address', async () => {
    nextWindow();
    const agent = await pendingAgent();
    for (let i = 0; i < TICKET_FAILURE_LIMIT; i += 1) {
      expect(await enroll(`10.3.0.${i}`, agent, `tkt_wrong-${i}-aaaaaaaaaaaa`)).toMatchObject({ status: 403, error: 'ticket_invalid' });
    }
    const limited = await enroll('10.3.0.99', agent);
    expect(limited).toMatchObject({ status: 429, error: 'rate_limited' });
    expect(Number(limited.retryAfter)).toBeGreaterThan(0);
    // Identified rejections stay one event each.
    expect((await audit('ticket.rejected')).filter((event) => event.identity_id === agent.identity_id).map((event) => event.reason)).toEqual([
      ...Array<string>(TICKET_FAILURE_LIMIT).fill('ticket_invalid'),
      'rate_limited',
    ]);
    // Another identity is not affected; this one may try again in the next window.
    const other = await pendingAgent();
    expect((await enroll('10.3.0.99', other)).status).toBe(200);
    nextWindow();
    expect((await enroll('10.3.0.99', agent)).status).toBe(200);
  });
});
