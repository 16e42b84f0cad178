import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GetPublicKeyCommand,
  KMSClient,
  SignCommand,
  type Tag,
} from '@aws-sdk/client-kms';
import { TesseraError } from '../errors.js';
import type { CreateKeyOptions, KeyStore, Signer, WrappingKey } from './key-store.js';

/**
 * The part of the AWS SDK KMS client this store uses. A KMSClient satisfies it; the store owns
 * the client it is given and destroys it on close().
 */
export type KmsApi = Pick<KMSClient, 'send' | 'destroy'>;

/** Where the client points, for describe() only: the SDK resolves both lazily and asynchronously. */
export interface KmsLocation {
  readonly region?: string;
  readonly endpoint?: string;
}

const URI_PREFIX = 'aws-kms:';
const ED25519_KEY_SPEC = 'ECC_NIST_EDWARDS25519';
// DER SubjectPublicKeyInfo header for an Ed25519 key (RFC 8410); the raw 32-byte key follows.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

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
    return uri.startsWith(URI_PREFIX);
  }

  async createSigningKey(options: CreateKeyOptions): Promise<Signer> {
    const keyId = await this.createKey(options, ED25519_KEY_SPEC, 'SIGN_VERIFY');
    return this.openSigner(keyId);
  }

  async getSigner(uri: string): Promise<Signer> {
    return this.openSigner(keyIdOf(uri));
  }

  async createWrappingKey(options: CreateKeyOptions): Promise<WrappingKey> {
    return this.wrappingKey(await this.createKey(options, 'SYMMETRIC_DEFAULT', 'ENCRYPT_DECRYPT'));
  }

  async getWrappingKey(uri: string): Promise<WrappingKey> {
    const keyId = keyIdOf(uri);
    const { KeyMetadata: meta } = await kms('DescribeKey', () => this.client.send(new DescribeKeyCommand({ KeyId: keyId })));
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
    const { KeyMetadata: meta } = await kms('CreateKey', () =>
      this.client.send(new CreateKeyCommand({ KeySpec: keySpec, KeyUsage: keyUsage, Description: options.label, Tags: tags })),
    );
    const keyId = meta?.Arn ?? meta?.KeyId;
    if (!keyId) throw new TesseraError('key_store_error', 'KMS CreateKey returned no key id');
    return keyId;
  }

  /** Fetches the public key once; every sign() afterwards is a single KMS Sign call. */
  private async openSigner(keyId: string): Promise<Signer> {
    const client = this.client;
    const response = await kms('GetPublicKey', () => client.send(new GetPublicKeyCommand({ KeyId: keyId })));
    if (response.KeySpec !== ED25519_KEY_SPEC || response.KeyUsage !== 'SIGN_VERIFY') {
      throw new TesseraError('key_store_error', `KMS key ${keyId} is not an Ed25519 SIGN_VERIFY key`);
    }
    const publicKey = rawEd25519PublicKey(response.PublicKey, keyId);
    const uri = URI_PREFIX + (response.KeyId ?? keyId);
    // A plain frozen object: callers (and JSON.stringify) see the URI, the public key and sign().
    return Object.freeze({
      uri,
      publicKey,
      async sign(data: Uint8Array): Promise<Uint8Array> {
        const { Signature } = await kms('Sign', () =>
          client.send(new SignCommand({ KeyId: keyId, Message: data, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' })),
        );
        if (Signature?.length !== 64) throw new TesseraError('key_store_error', 'KMS Sign returned a malformed Ed25519 signature');
        return Signature;
      },
    });
  }

  private wrappingKey(keyId: string): WrappingKey {
    const client = this.client;
    return Object.freeze({
      uri: URI_PREFIX + keyId,
      async wrap(plaintext: Uint8Array): Promise<Uint8Array> {
        const { CiphertextBlob } = await kms('Encrypt', () => client.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext })));
        if (!CiphertextBlob) throw new TesseraError('key_store_error', 'KMS Encrypt returned no ciphertext');
        return CiphertextBlob;
      },
      async unwrap(ciphertext: Uint8Array): Promise<Uint8Array> {
        // Naming the key stops KMS from decrypting with whatever key the blob points at.
        const { Plaintext } = await kms('Decrypt', () =>
          client.send(new DecryptCommand({ KeyId: keyId, CiphertextBlob: ciphertext })),
        );
        if (!Plaintext) throw new TesseraError('key_store_error', 'KMS Decrypt returned no plaintext');
        return Plaintext;
      },
    });
  }

}

/** Runs one KMS call, translating SDK and network failures into TesseraErrors. */
async function kms<T>(operation: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    throw kmsError(operation, error);
  }
}

function keyIdOf(uri: string): string {
  const keyId = uri.startsWith(URI_PREFIX) ? uri.slice(URI_PREFIX.length) : '';
  if (!keyId) throw new TesseraError('key_not_found', `Not an ${URI_PREFIX} key URI`);
  return keyId;
}

function rawEd25519PublicKey(spki: Uint8Array | undefined, keyId: string): Uint8Array {
  const der = Buffer.from(spki ?? []);
  if (der.length !== ED25519_SPKI_PREFIX.length + 32 || !der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)) {
    throw new TesseraError('key_store_error', `KMS returned a public key for ${keyId} that is not Ed25519 SPKI`);
  }
  return new Uint8Array(der.subarray(ED25519_SPKI_PREFIX.length));
}

/**
 * NotFoundException (including KMS's "Invalid keyId") means the key is absent; everything else —
 * disabled or pending-deletion keys, wrong key usage, throttling that outlasted the SDK's retries,
 * network failures — is a key store failure. Messages carry the error name only, never payloads.
 */
function kmsError(operation: string, error: unknown): TesseraError {
  if (error instanceof TesseraError) return error;
  const name = errorName(error);
  const code = name === 'NotFoundException' ? 'key_not_found' : 'key_store_error';
  return new TesseraError(code, `KMS ${operation} failed: ${name}`, { cause: error });
}

function errorName(error: unknown): string {
  if (!(error instanceof Error)) return 'UnknownError';
  // Node network errors are plain Errors whose code (ECONNREFUSED, ...) is the useful part.
  const code = (error as { code?: unknown }).code;
  return error.name === 'Error' && typeof code === 'string' ? code : error.name;
}
