/**
 * The SDK's session keys against a real broker whose agent keys live in the local KMS endpoint
 * (the unmodified AWS SDK over HTTP): the KMS key signs one certificate per session, the in-memory
 * session key every request; renewal and backoff run on injected timers (fired by the test, as
 * when their delay has passed), never on sleeps.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BrokerRequestError, type ClientOptions, createClient, type Signer, TesseraError, type TesseraClient } from '@tessera-broker/sdk';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { ManualTimers } from '../support/clock.js';

/** A real KMS key whose Sign calls are counted, and that can answer as an exhausted KMS quota does. */
class MeteredKmsKey implements Signer {
  signs = 0;
  throttled = false;
  constructor(private readonly key: Signer) {}
  get uri() {
    return this.key.uri;
  }
  get publicKey() {
    return this.key.publicKey;
  }
  async sign(data: Uint8Array): Promise<Uint8Array> {
    if (this.throttled) {
      // What kmsSigner throws once the AWS SDK's own retries of a ThrottlingException ran out.
      throw new TesseraError('key_store_error', 'KMS Sign failed: ThrottlingException', { cause: Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }) });
    }
    this.signs++;
    return this.key.sign(data);
  }
}

/** Waits for background work a fired timer started (a KMS call and a broker round trip: slow on a busy machine). */
const settled = (check: () => void) => vi.waitFor(check, { timeout: 15_000, interval: 10 });

describe('SDK session keys (KMS-backed agent)', () => {
  let broker: TestBroker;
  const clients: TesseraClient[] = [];

  async function agent(address: string, sessions?: ClientOptions['sessions']) {
    const provisioned = await broker.provision(address);
    await (await broker.clientFor(provisioned.key_uri)).request('POST', '/v1/enroll', { ticket: provisioned.ticket });
    const key = new MeteredKmsKey(await broker.keyStores.signer(provisioned.key_uri));
    const client = await createClient({ broker: broker.url, key, ...(sessions !== undefined && { sessions }) });
    clients.push(client);
    return { client, key };
  }

  const auditOf = (identityId: string, action: string) =>
    broker.admin.request<{ events: { details: Record<string, unknown>; proof: string | null }[] }>('GET', `/v1/admin/audit?identity=${identityId}&action=${action}`).then((reply) => reply.events);

  beforeAll(async () => {
    broker = await startTestBroker({ keystore: 'kms' });
  }, 120_000);
  afterAll(async () => {
    for (const client of clients) await client.close();
    await broker?.close();
  });

  it('signs one certificate per session with the KMS key and every request with the session key', async () => {
    const timers = new ManualTimers();
    const { client, key } = await agent('sessions-default@test.local', { timers });
    for (let i = 0; i < 20; i++) await client.whoami();
    // The certificate and the registration's proof: two KMS signatures for twenty requests.
    expect(key.signs).toBe(2);
    const [registered] = await auditOf(client.identityId, 'session.registered');
    expect(registered!.details.session_id).toMatch(/^ses_/);
    // Renewal armed at two thirds of the default 15 minutes, less up to a tenth of it as jitter.
    expect(timers.delays).toHaveLength(1);
    expect(timers.delays[0]).toBeGreaterThan(900_000 * (2 / 3 - 1 / 10) - 1_000);
    expect(timers.delays[0]).toBeLessThanOrEqual(900_000 * (2 / 3));
  });

  it('renews at two thirds of the lifetime with a higher generation, and keeps the session through KMS throttling', async () => {
    const timers = new ManualTimers();
    const onError = vi.fn();
    const { client, key } = await agent('sessions-renew@test.local', { lifetime: '10m', timers, onError });
    await client.whoami();
    timers.fire();
    await settled(() => expect(key.signs).toBe(4));
    await settled(() => expect(timers.pending).toBe(1));
    await client.whoami();
    const registered = await auditOf(client.identityId, 'session.registered');
    expect(registered).toHaveLength(2);
    expect(registered[1]!.details.generation as number).toBeGreaterThan(registered[0]!.details.generation as number);
    expect(key.signs).toBe(4);

    // KMS throttles: renewal fails, the current session stays in use, retries back off (doubling, jittered).
    key.throttled = true;
    timers.fire();
    await settled(() => expect(onError).toHaveBeenCalledTimes(1));
    expect(onError.mock.calls[0]![0]).toMatchObject({ code: 'key_store_error', message: expect.stringContaining('ThrottlingException') });
    await client.whoami();
    expect(timers.pending).toBe(1);
    const firstBackoff = timers.delays[2]!;
    expect(firstBackoff).toBeGreaterThanOrEqual(500);
    expect(firstBackoff).toBeLessThanOrEqual(1_000);
    timers.fire();
    await settled(() => expect(onError).toHaveBeenCalledTimes(2));
    expect(timers.delays[3]).toBeGreaterThanOrEqual(1_000);
    expect(timers.delays[3]).toBeLessThanOrEqual(2_000);
    await client.whoami();
    expect(key.signs).toBe(4);

    // The quota recovers: the next retry renews.
    key.throttled = false;
    timers.fire();
    // The next renewal is armed once the registration is answered.
    await settled(() => expect(timers.pending).toBe(1));
    expect(key.signs).toBe(6);
    expect(await auditOf(client.identityId, 'session.registered')).toHaveLength(3);
  });

  it('registers a new session when the broker refuses the current one, and reports a revoked identity', async () => {
    const timers = new ManualTimers();
    const { client, key } = await agent('sessions-revoked@test.local', { timers });
    await client.whoami();
    await broker.admin.request('POST', `/v1/admin/identities/${encodeURIComponent('sessions-revoked@test.local')}/revoke`, { reason: 'test' });
    // session_revoked, then the new registration (primary key) is refused: the identity is revoked.
    const error = await client.whoami().then(
      () => expect.unreachable('a revoked identity was served'),
      (refusal: unknown) => refusal,
    );
    expect(error).toBeInstanceOf(BrokerRequestError);
    expect(error).toMatchObject({ status: 403, code: 'identity_revoked' });
    expect(key.signs).toBe(4);
  });

  it('signs every request with the KMS key when sessions are off (option or TESSERA_SESSIONS=off)', async () => {
    const off = await agent('sessions-off@test.local', false);
    for (let i = 0; i < 3; i++) await off.client.whoami();
    expect(off.key.signs).toBe(3);

    vi.stubEnv('TESSERA_SESSIONS', 'off');
    try {
      const fromEnv = await agent('sessions-env-off@test.local');
      for (let i = 0; i < 3; i++) await fromEnv.client.whoami();
      expect(fromEnv.key.signs).toBe(3);
      expect(await auditOf(fromEnv.client.identityId, 'session.registered')).toHaveLength(0);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
