import { CreateKeyCommand, DecryptCommand, DescribeKeyCommand, EncryptCommand, KMSClient, type Tag } from '@aws-sdk/client-kms';
import { ED25519_KEY_SPEC, type KmsApi, KMS_URI_PREFIX, kmsCall, kmsKeyIdOf, kmsSigner } from '@tessera-broker/sdk/signers';
import { TesseraError } from '../errors.js';
import type { CreateKeyOptions, KeyStore, Signer, WrappingKey } from './key-store.js';

/** Where the client points, for describe() only: the SDK resolves both lazily and asynchronously. */
export interface KmsLocation {
  readonly region?: string;
  readonly endpoint?: string;
}

/** The store owns the KMS client it is given and destroys it on close(); signing is the SDK's kmsSigner, shared with agents. */
export class KmsKeyStore implements KeyStore {
  readonly kind = 'kms' as const;

  constructor(
    private readonly client: KmsApi,
    private readonly location: KmsLocation = {},
  ) {}

  /**
   * A store on `new KMSClient({})`: region, endpoint (AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL),
   * credentials and retry mode all come from the standard AWS SDK chain, so the same code runs
   * against real AWS and against `tessera dev kms`.
   */
  static fromEnvironment(): KmsKeyStore {
    const env = process.env;
    return new KmsKeyStore(new KMSClient({}), {
      region: env.AWS_REGION,
      // Same precedence as the SDK, which also skips empty endpoint variables.
      endpoint: env.AWS_ENDPOINT_URL_KMS || env.AWS_ENDPOINT_URL || undefined,
    });
  }

  handles(uri: string): boolean {
    return uri.startsWith(KMS_URI_PREFIX);
  }

  async createSigningKey(options: CreateKeyOptions): Promise<Signer> {
    const keyId = await this.createKey(options, ED25519_KEY_SPEC, 'SIGN_VERIFY');
    return kmsSigner(this.client, keyId);
  }

  async getSigner(uri: string): Promise<Signer> {
    return kmsSigner(this.client, kmsKeyIdOf(uri));
  }

  async createWrappingKey(options: CreateKeyOptions): Promise<WrappingKey> {
    return this.wrappingKey(await this.createKey(options, 'SYMMETRIC_DEFAULT', 'ENCRYPT_DECRYPT'));
  }

  async getWrappingKey(uri: string): Promise<WrappingKey> {
    const keyId = kmsKeyIdOf(uri);
    const { KeyMetadata: meta } = await kmsCall('DescribeKey', () => this.client.send(new DescribeKeyCommand({ KeyId: keyId })));
    if (meta?.KeySpec !== 'SYMMETRIC_DEFAULT' || meta.KeyUsage !== 'ENCRYPT_DECRYPT') {
      throw new TesseraError('key_store_error', `KMS key ${keyId} is not a symmetric ENCRYPT_DECRYPT key`);
    }
    return this.wrappingKey(meta.Arn ?? keyId);
  }

  describe(): string {
    return `aws-kms region=${this.location.region ?? '(sdk default)'} endpoint=${this.location.endpoint ?? '(aws default)'}`;
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private async createKey(
    options: CreateKeyOptions,
    keySpec: 'ECC_NIST_EDWARDS25519' | 'SYMMETRIC_DEFAULT',
    keyUsage: 'SIGN_VERIFY' | 'ENCRYPT_DECRYPT',
  ): Promise<string> {
    const tags: Tag[] = Object.entries({ ...options.tags, 'tessera:label': options.label }).map(([TagKey, TagValue]) => ({
      TagKey,
      TagValue,
    }));
    const { KeyMetadata: meta } = await kmsCall('CreateKey', () =>
      this.client.send(new CreateKeyCommand({ KeySpec: keySpec, KeyUsage: keyUsage, Description: options.label, Tags: tags })),
    );
    const keyId = meta?.Arn ?? meta?.KeyId;
    if (!keyId) throw new TesseraError('key_store_error', 'KMS CreateKey returned no key id');
    return keyId;
  }

  private wrappingKey(keyId: string): WrappingKey {
    const client = this.client;
    return Object.freeze({
      uri: KMS_URI_PREFIX + keyId,
      async wrap(plaintext: Uint8Array): Promise<Uint8Array> {
        const { CiphertextBlob } = await kmsCall('Encrypt', () => client.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext })));
        if (!CiphertextBlob) throw new TesseraError('key_store_error', 'KMS Encrypt returned no ciphertext');
        return CiphertextBlob;
      },
      async unwrap(ciphertext: Uint8Array): Promise<Uint8Array> {
        // Naming the key stops KMS from decrypting with whatever key the blob points at.
        const { Plaintext } = await kmsCall('Decrypt', () =>
          client.send(new DecryptCommand({ KeyId: keyId, CiphertextBlob: ciphertext })),
        );
        if (!Plaintext) throw new TesseraError('key_store_error', 'KMS Decrypt returned no plaintext');
        return Plaintext;
      },
    });
  }
}
