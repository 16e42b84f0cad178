/**
 * TESSERA_TRUSTED_PROXIES: behind a load balancer every client arrives from its address, so the
 * per-address failure limit (TESSERA_AUTH_FAILURE_LIMIT) would lump them together; the balancer
 * names the client in X-Forwarded-For. That header is believed only from a trusted peer: from
 * anyone else it is a spoof, and failures keep counting against the socket's address.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROOF_SCHEME } from '../../src/identity/proof.js';
import type { TestBroker } from '../support/broker.js';
import { rejectionMark, rejectionsSince } from '../support/rejections.js';
import { startProxyBroker } from '../proxy/support.js';

const LIMIT = 3;
const WINDOW_MS = 10_000;
/** The load balancer; the other loopback addresses are clients that reach the broker directly. */
const BALANCER = '127.0.0.5';
const DIRECT = '127.0.0.6';

describe('TESSERA_TRUSTED_PROXIES: the client address behind a load balancer', () => {
  let env: TestBroker;
  beforeAll(async () => {
    env = await startProxyBroker({
      env: { TESSERA_AUTH_FAILURE_LIMIT: String(LIMIT), TESSERA_AUTH_FAILURE_WINDOW: `${WINDOW_MS / 1000}s`, TESSERA_TRUSTED_PROXIES: `10.200.0.0/16, ${BALANCER}` },
    });
  });
  afterAll(() => env?.close());

  const nextWindow = () => env.clock.advance(WINDOW_MS - (env.clock.now() % WINDOW_MS));

  /** A junk proof to the API from the socket address `peer`, claiming to forward for `forwardedFor`. */
  async function junkProof(peer: string, forwardedFor: string): Promise<number> {
    const response = await env.broker.app.inject({ method: 'GET', url: '/v1/whoami', remoteAddress: peer, headers: { authorization: `${PROOF_SCHEME} not-a-jws`, 'x-forwarded-for': forwardedFor } });
    return response.statusCode;
  }

  /** An unknown lease token to the credential proxy over a real socket from `peer`, claiming to forward for `forwardedFor`. */
  function unknownToken(peer: string, forwardedFor: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const sent = request(new URL('/v1/charges', `http://${env.config.proxyListen}`), { localAddress: peer, agent: false, headers: { authorization: 'Bearer tsk_junk', 'x-forwarded-for': forwardedFor } }, (response) => {
        response.resume().on('end', () => resolve(response.statusCode!));
      });
      sent.on('error', reject);
      sent.end();
    });
  }

  for (const [surface, fail] of [['API', junkProof], ['credential proxy', unknownToken]] as const) {
    it(`${surface}: X-Forwarded-For from an untrusted peer is ignored: a new spoofed address each time still counts against the peer`, async () => {
      nextWindow();
      for (let i = 0; i < LIMIT; i++) expect(await fail(DIRECT, `198.51.100.${i + 1}`)).toBe(401);
      expect(await fail(DIRECT, '198.51.100.99')).toBe(429);
    });

    it(`${surface}: from the trusted balancer, each forwarded client has its own limit`, async () => {
      nextWindow();
      for (let i = 0; i < LIMIT; i++) expect(await fail(BALANCER, '203.0.113.7')).toBe(401);
      expect(await fail(BALANCER, '203.0.113.7')).toBe(429);
      // Another client behind the same balancer is not locked out with it.
      expect(await fail(BALANCER, '203.0.113.8')).toBe(401);
      // A client that prepends its own X-Forwarded-For is named by the address the balancer appended.
      expect(await fail(BALANCER, '203.0.113.8, 203.0.113.7')).toBe(429);
    });
  }

  it('names the forwarded client, not the balancer, in the rejection summary', async () => {
    nextWindow();
    const mark = await rejectionMark(env);
    expect(await junkProof(BALANCER, '203.0.113.20')).toBe(401);
    const { counts } = await rejectionsSince(env, mark);
    expect(counts).toEqual([expect.objectContaining({ source: '203.0.113.20' })]);
  });
});
