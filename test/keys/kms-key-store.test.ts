import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  DisabledException,
  EnableKeyCommand,
  EncryptCommand,
  InvalidCiphertextException,
  InvalidKeyUsageException,
  KMSClient,
  KMSInvalidStateException,
  ListKeysCommand,
  ListResourceTagsCommand,
  NotFoundException,
  ScheduleKeyDeletionCommand,
  SignCommand,
  VerifyCommand,
} from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyEd25519 } from '../../src/crypto/ed25519.js';
import { isTesseraError } from '../../src/errors.js';
import { KmsKeyStore } from '../../src/keys/kms-key-store.js';
import { describeKeyStoreContract } from '../contract/key-store.contract.js';
import { startLocalKms, type LocalKms } from '../support/kms.js';

let kms: LocalKms;
beforeAll(async () => {
  kms = await startLocalKms();
});
afterAll(async () => {
  await kms.stop();
});

describeKeyStoreContract('aws-kms (local endpoint)', async () => kms.openStore());

const label = () => `kms-test-${randomUUID()}`;
const keyIdOf = (uri: string) => uri.slice('aws-kms:'.length);
const message = new TextEncoder().encode('proof bytes');

/** Runs `body` with a store and a raw SDK client on the shared endpoint, closing both. */
async function withStore(body: (store: KmsKeyStore, client: KMSClient) => Promise<void>): Promise<void> {
  const store = kms.openStore();
  const client = kms.client();
  try {
    await body(store, client);
  } finally {
    await store.close();
    client.destroy();
  }
}

describe('KmsKeyStore against the dev KMS endpoint', () => {
  it('creates an Ed25519 SIGN_VERIFY key labelled and tagged as asked', () =>
    withStore(async (store, client) => {
      const name = label();
      const signer = await store.createSigningKey({ label: name, tags: { 'tessera:address': 'bot@example.test' } });
      const KeyId = keyIdOf(signer.uri);
      expect(KeyId).toMatch(new RegExp(`^arn:aws:kms:${kms.region}:\\d{12}:key/[0-9a-f-]{36}$`));

      const { Tags } = await client.send(new ListResourceTagsCommand({ KeyId }));
      expect(Tags).toEqual(
        expect.arrayContaining([
          { TagKey: 'tessera:address', TagValue: 'bot@example.test' },
          { TagKey: 'tessera:label', TagValue: name },
        ]),
      );
      const { KeyMetadata } = await client.send(new DescribeKeyCommand({ KeyId }));
      expect(KeyMetadata).toMatchObject({
        Description: name,
        KeySpec: 'ECC_NIST_EDWARDS25519',
        KeyUsage: 'SIGN_VERIFY',
        KeyState: 'Enabled',
        Enabled: true,
        SigningAlgorithms: ['ED25519_SHA_512'],
      });
      expect(KeyMetadata?.CreationDate).toBeInstanceOf(Date);
      const { Keys } = await client.send(new ListKeysCommand({}));
      expect(Keys?.map((k) => k.KeyArn)).toContain(KeyId);

      const signature = await signer.sign(message);
      const verified = await client.send(
        new VerifyCommand({ KeyId, Message: message, Signature: signature, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' }),
      );
      expect(verified.SignatureValid).toBe(true);
    }));

  it('reports an unknown key id as key_not_found, and the SDK raises NotFoundException', () =>
    withStore(async (store, client) => {
      await expect(store.getSigner(`aws-kms:${randomUUID()}`)).rejects.toSatisfy((e) => isTesseraError(e, 'key_not_found'));
      await expect(store.getWrappingKey(`aws-kms:${randomUUID()}`)).rejects.toSatisfy((e) => isTesseraError(e, 'key_not_found'));
      await expect(
        client.send(new SignCommand({ KeyId: randomUUID(), Message: message, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' })),
      ).rejects.toBeInstanceOf(NotFoundException);
    }));

  it('fails signing with a disabled key as key_store_error naming DisabledException', () =>
    withStore(async (store, client) => {
      const signer = await store.createSigningKey({ label: label() });
      const KeyId = keyIdOf(signer.uri);
      await client.send(new DisableKeyCommand({ KeyId }));

      const failure = await signer.sign(message).catch((e: unknown) => e);
      expect(isTesseraError(failure, 'key_store_error')).toBe(true);
      expect((failure as Error).message).toContain('DisabledException');
      await expect(
        client.send(new SignCommand({ KeyId, Message: message, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' })),
      ).rejects.toBeInstanceOf(DisabledException);

      await client.send(new EnableKeyCommand({ KeyId }));
      expect(verifyEd25519(await signer.sign(message), message, signer.publicKey)).toBe(true);
    }));

  it('rejects keys pending deletion with KMSInvalidStateException', () =>
    withStore(async (store, client) => {
      const signer = await store.createSigningKey({ label: label() });
      await client.send(new ScheduleKeyDeletionCommand({ KeyId: keyIdOf(signer.uri), PendingWindowInDays: 7 }));
      const failure = await signer.sign(message).catch((e: unknown) => e);
      expect(isTesseraError(failure, 'key_store_error')).toBe(true);
      expect((failure as Error).cause).toBeInstanceOf(KMSInvalidStateException);
    }));

  it('refuses to sign with a symmetric key (InvalidKeyUsageException) and to encrypt with a signing key', () =>
    withStore(async (store, client) => {
      const wrapping = await store.createWrappingKey({ label: label() });
      await expect(
        client.send(new SignCommand({ KeyId: keyIdOf(wrapping.uri), Message: message, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' })),
      ).rejects.toBeInstanceOf(InvalidKeyUsageException);
      await expect(store.getSigner(wrapping.uri)).rejects.toSatisfy((e) => isTesseraError(e, 'key_store_error'));

      const signer = await store.createSigningKey({ label: label() });
      await expect(client.send(new EncryptCommand({ KeyId: keyIdOf(signer.uri), Plaintext: message }))).rejects.toBeInstanceOf(
        InvalidKeyUsageException,
      );
      await expect(store.getWrappingKey(signer.uri)).rejects.toSatisfy((e) => isTesseraError(e, 'key_store_error'));
    }));

  it('decrypts by the key id in the blob and rejects tampered or foreign blobs', () =>
    withStore(async (store, client) => {
      const wrapping = await store.createWrappingKey({ label: label() });
      const other = await store.createWrappingKey({ label: label() });
      const blob = await wrapping.wrap(message);

      const { Plaintext } = await client.send(new DecryptCommand({ CiphertextBlob: blob }));
      expect(Buffer.from(Plaintext!)).toEqual(Buffer.from(message));

      const tampered = Uint8Array.from(blob);
      tampered[tampered.length - 5]! ^= 0x80;
      await expect(client.send(new DecryptCommand({ CiphertextBlob: tampered }))).rejects.toBeInstanceOf(InvalidCiphertextException);
      const failure = await wrapping.unwrap(tampered).catch((e: unknown) => e);
      expect(isTesseraError(failure, 'key_store_error')).toBe(true);
      expect((failure as Error).message).toContain('InvalidCiphertextException');

      await expect(other.unwrap(blob)).rejects.toSatisfy((e) => isTesseraError(e, 'key_store_error'));
    }));

  it('surfaces ThrottlingException without retries and succeeds with the SDK retrying', async () => {
    const throttled = await startLocalKms({ throttle: { ratePerSecond: 2 } });
    const once = throttled.client({ maxAttempts: 1 });
    const patient = throttled.client({ maxAttempts: 10 });
    const store = throttled.openStore({ maxAttempts: 1 });
    try {
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => once.send(new ListKeysCommand({}))));
      const rejected = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error & { $metadata?: { httpStatusCode?: number } }] : []));
      expect(rejected.length).toBeGreaterThan(0);
      expect(rejected[0]!.name).toBe('ThrottlingException');
      expect(rejected[0]!.$metadata?.httpStatusCode).toBe(400);

      const storeFailure = await store.createWrappingKey({ label: label() }).catch((e: unknown) => e);
      expect(isTesseraError(storeFailure, 'key_store_error')).toBe(true);
      expect((storeFailure as Error).message).toContain('ThrottlingException');

      const retried = await Promise.all(Array.from({ length: 4 }, () => patient.send(new ListKeysCommand({}))));
      expect(retried).toHaveLength(4);
    } finally {
      once.destroy();
      patient.destroy();
      await store.close();
      await throttled.stop();
    }
  });

  it('maps an unreachable endpoint to key_store_error', async () => {
    const store = new KmsKeyStore(
      new KMSClient({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', maxAttempts: 1, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
    );
    try {
      await expect(store.createSigningKey({ label: label() })).rejects.toSatisfy((e) => isTesseraError(e, 'key_store_error'));
    } finally {
      await store.close();
    }
  });

  it('works from environment variables alone via KmsKeyStore.fromEnvironment()', async () => {
    const saved = Object.fromEntries(Object.keys(kms.env).map((name) => [name, process.env[name]]));
    Object.assign(process.env, kms.env);
    try {
      const store = KmsKeyStore.fromEnvironment();
      try {
        expect(store.describe()).toContain(kms.url);
        expect(store.describe()).toContain(kms.region);
        expect(store.describe()).not.toMatch(/test|secret/i);
        const signer = await store.createSigningKey({ label: label() });
        expect(verifyEd25519(await signer.sign(message), message, signer.publicKey)).toBe(true);
      } finally {
        await store.close();
      }
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('rejects unauthenticated requests in KMS error shape', async () => {
    const response = await fetch(kms.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.ListKeys' },
      body: '{}',
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
    expect(await response.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
  });
});

describe('dev KMS state file', () => {
  it('keeps keys usable across a restart and stores them 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-devkms-'));
    const stateFile = join(dir, 'kms.json');
    try {
      const first = await startLocalKms({ stateFile });
      const store = first.openStore();
      const signer = await store.createSigningKey({ label: label() });
      const wrapping = await store.createWrappingKey({ label: label() });
      const blob = await wrapping.wrap(message);
      await store.close();
      await first.stop();
      expect(statSync(stateFile).mode & 0o777).toBe(0o600);

      const second = await startLocalKms({ stateFile });
      const reopened = second.openStore();
      try {
        const signerAgain = await reopened.getSigner(signer.uri);
        expect(Buffer.from(signerAgain.publicKey)).toEqual(Buffer.from(signer.publicKey));
        expect(verifyEd25519(await signerAgain.sign(message), message, signer.publicKey)).toBe(true);
        const unwrapped = await (await reopened.getWrappingKey(wrapping.uri)).unwrap(blob);
        expect(Buffer.from(unwrapped)).toEqual(Buffer.from(message));
      } finally {
        await reopened.close();
        await second.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
