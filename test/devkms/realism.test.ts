/**
 * The dev KMS's optional realism (src/devkms/realism.ts): Sign/Verify latency and the shared
 * asymmetric quota, through the unmodified AWS SDK over HTTP. Time is injected (ManualTimers on a
 * frozen TestClock): a delayed answer goes out when the test fires its timer, the bucket refills
 * when the test advances the clock; nothing sleeps.
 */
import { createPublicKey, verify } from 'node:crypto';
import {
  CreateKeyCommand,
  DescribeKeyCommand,
  GetPublicKeyCommand,
  type KMSClient,
  type KMSClientConfig,
  KMSServiceException,
  SignCommand,
  VerifyCommand,
} from '@aws-sdk/client-kms';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualTimers, TestClock } from '../support/clock.js';
import { type LocalKms, startLocalKms } from '../support/kms.js';

const message = new TextEncoder().encode('proof signing input');
const THROTTLED = 'You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.';

type RetryStrategyV2 = Extract<NonNullable<KMSClientConfig['retryStrategy']>, { refreshRetryTokenForRetry: unknown }>;

const started: { kms: LocalKms; clients: KMSClient[] }[] = [];
afterEach(async () => {
  for (const { kms, clients } of started.splice(0)) {
    for (const client of clients) client.destroy();
    await kms.stop();
  }
});

/** A dev KMS on timers the test controls, and SDK clients on it that never retry. */
async function realisticKms(options: Parameters<typeof startLocalKms>[0]) {
  const clock = new TestClock();
  clock.freeze();
  const timers = new ManualTimers(clock);
  const kms = await startLocalKms({ ...options, timers });
  const clients: KMSClient[] = [];
  started.push({ kms, clients });
  const client = (overrides: Partial<KMSClientConfig> = {}) => {
    const created = kms.client({ maxAttempts: 1, ...overrides });
    clients.push(created);
    return created;
  };
  return { kms, clock, timers, client };
}

async function createSigningKey(client: KMSClient): Promise<string> {
  const { KeyMetadata } = await client.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_EDWARDS25519', KeyUsage: 'SIGN_VERIFY' }));
  return KeyMetadata!.KeyId!;
}

const signCommand = (KeyId: string) => new SignCommand({ KeyId, Message: message, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' });
const verifyCommand = (KeyId: string, Signature: Uint8Array) =>
  new VerifyCommand({ KeyId, Message: message, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512', Signature });

/** The SDK error a throttled call raises, checked field by field as AWS KMS's own throttling answer. */
async function expectThrottled(call: Promise<unknown>): Promise<void> {
  const error = await call.then(
    () => expect.fail('the call was not throttled'),
    (reason: unknown) => reason,
  );
  // KMS's service model declares no ThrottlingException shape: the SDK raises its service exception under that name.
  expect(error).toBeInstanceOf(KMSServiceException);
  expect(error).toMatchObject({ name: 'ThrottlingException', message: THROTTLED, $fault: 'client', $metadata: { httpStatusCode: 400 } });
}

describe('dev KMS sign latency', () => {
  it('holds Sign and Verify answers back by the latency on the injected timers; key management and GetPublicKey answer at once', async () => {
    const { timers, client } = await realisticKms({ signLatencyMs: 25 });
    const kms = client();
    const keyId = await createSigningKey(kms);
    const { PublicKey } = await kms.send(new GetPublicKeyCommand({ KeyId: keyId }));
    await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
    expect(timers.delays).toEqual([]);

    let signed = false;
    const signing = kms.send(signCommand(keyId)).finally(() => (signed = true));
    await vi.waitFor(() => expect(timers.pending).toBe(1));
    expect(timers.delays).toEqual([25]);
    expect(signed).toBe(false);
    timers.fire();
    const { Signature } = await signing;
    expect(verify(null, message, createPublicKey({ key: Buffer.from(PublicKey!), format: 'der', type: 'spki' }), Signature!)).toBe(true);

    let verified = false;
    const verifying = kms.send(verifyCommand(keyId, Signature!)).finally(() => (verified = true));
    await vi.waitFor(() => expect(timers.pending).toBe(1));
    expect(timers.delays).toEqual([25, 25]);
    expect(verified).toBe(false);
    timers.fire();
    expect((await verifying).SignatureValid).toBe(true);
  });
});

describe('dev KMS asymmetric quota', () => {
  it('answers ThrottlingException (HTTP 400) past the quota shared by Sign and Verify, which the SDK retry strategy classifies as throttling', async () => {
    const { kms: endpoint, client } = await realisticKms({ asymmetricQuota: { ratePerSecond: 4, burst: 2 } });
    const admin = client();
    const keyId = await createSigningKey(admin);
    const otherKeyId = await createSigningKey(admin);

    // The client's own standard retry strategy, watched: what the SDK's retry middleware makes of the answer.
    const errorTypes: string[] = [];
    const standard = (await admin.config.retryStrategy()) as RetryStrategyV2;
    const watched: RetryStrategyV2 = {
      acquireInitialRetryToken: (scope) => standard.acquireInitialRetryToken(scope),
      refreshRetryTokenForRetry: (token, info) => {
        errorTypes.push(info.errorType);
        return standard.refreshRetryTokenForRetry(token, info);
      },
      recordSuccess: (token) => standard.recordSuccess(token),
    };
    const kms = client({ retryStrategy: watched });

    const { Signature } = await kms.send(signCommand(keyId));
    await kms.send(signCommand(otherKeyId));
    await expectThrottled(kms.send(signCommand(keyId)));
    expect(errorTypes).toEqual(['THROTTLING']);
    // One bucket for every key and for Verify too; GetPublicKey and key management are not counted.
    await expectThrottled(kms.send(verifyCommand(otherKeyId, Signature!)));
    await kms.send(new GetPublicKeyCommand({ KeyId: keyId }));
    await createSigningKey(admin);

    expect(endpoint.counts()).toMatchObject({ Sign: { requests: 3, throttled: 1 }, Verify: { requests: 1, throttled: 1 }, GetPublicKey: { requests: 1, throttled: 0 } });
  });

  it('refills at the quota rate on the injected clock, up to the burst', async () => {
    const { clock, client } = await realisticKms({ asymmetricQuota: { ratePerSecond: 4, burst: 2 } });
    const kms = client();
    const keyId = await createSigningKey(kms);
    await kms.send(signCommand(keyId));
    await kms.send(signCommand(keyId));
    await expectThrottled(kms.send(signCommand(keyId)));

    clock.advance(240); // 0.96 of a token at 4/s
    await expectThrottled(kms.send(signCommand(keyId)));
    clock.advance(10); // one token
    await kms.send(signCommand(keyId));
    await expectThrottled(kms.send(signCommand(keyId)));

    clock.advance(60_000); // a long idle spell refills the burst, not a minute of requests
    await kms.send(signCommand(keyId));
    await kms.send(signCommand(keyId));
    await expectThrottled(kms.send(signCommand(keyId)));
  });

  it('refuses a throttled call at once, without the sign latency', async () => {
    const { timers, client } = await realisticKms({ signLatencyMs: 25, asymmetricQuota: { ratePerSecond: 1, burst: 1 } });
    const kms = client();
    const keyId = await createSigningKey(kms);
    const signing = kms.send(signCommand(keyId));
    await vi.waitFor(() => expect(timers.pending).toBe(1));
    await expectThrottled(kms.send(signCommand(keyId)));
    expect(timers.delays).toEqual([25]);
    timers.fire();
    await signing;
  });
});
