/**
 * `tessera dev kms` realism flags: parsed, reported on start, and in effect for the unmodified AWS
 * SDK. Exact timing is tested in test/devkms/realism.test.ts on injected timers; here only what
 * holds on any machine: a burst of simultaneous Sign calls past a 1-call bucket gets throttled.
 */
import { CreateKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { afterAll, describe, expect, it } from 'vitest';
import { cliFails, startCli, stopAllCli } from '../support/cli.js';

const CLI_TEST_TIMEOUT_MS = 120_000;

afterAll(() => stopAllCli());

describe('tessera dev kms realism flags', { timeout: CLI_TEST_TIMEOUT_MS }, () => {
  it('reports the latency and quota it runs with, and throttles Sign past the quota', async () => {
    const kms = startCli(['dev', 'kms', '--listen', '127.0.0.1:0', '--sign-latency', '25ms', '--asymmetric-quota', '1/s', '--asymmetric-burst', '1']);
    let url = '';
    await kms.waitForOutput((stdout) => {
      url = /^Dev KMS listening on (http:\/\/\S+) /m.exec(stdout)?.[1] ?? '';
      return url !== '';
    });
    expect(kms.output().stdout).toContain('Realism: Sign/Verify latency 25 ms; Sign/Verify quota 1/s (burst 1), then ThrottlingException.');

    const client = new KMSClient({ endpoint: url, region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    try {
      const { KeyMetadata } = await client.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_EDWARDS25519', KeyUsage: 'SIGN_VERIFY' }));
      const sign = () =>
        client.send(new SignCommand({ KeyId: KeyMetadata!.KeyId!, Message: Buffer.from('m'), MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' }));
      // Five at once against a bucket of one refilled at 1/s: most are refused, whatever the machine's speed.
      const results = await Promise.allSettled(Array.from({ length: 5 }, sign));
      const refused = results.flatMap((result) => (result.status === 'rejected' ? [result.reason as Error] : []));
      expect(results.some((result) => result.status === 'fulfilled')).toBe(true);
      expect(refused.length).toBeGreaterThan(0);
      for (const error of refused) expect(error.name).toBe('ThrottlingException');
    } finally {
      client.destroy();
      await kms.stop();
    }
  });

  it.each([
    [['--sign-latency', '25'], 'expected a duration with its unit'],
    [['--sign-latency', '11s'], 'expected a duration with its unit'],
    [['--asymmetric-quota', '0/s'], 'expected requests per second'],
    [['--asymmetric-quota', '300/m'], 'expected requests per second'],
    [['--asymmetric-burst', '10'], '--asymmetric-burst needs --asymmetric-quota'],
  ])('refuses %j before listening', async (flags, message) => {
    const result = await cliFails(['dev', 'kms', '--listen', '127.0.0.1:0', ...flags]);
    expect(result.stderr).toContain(message);
    expect(result.stdout).not.toContain('Dev KMS listening');
  });
});
