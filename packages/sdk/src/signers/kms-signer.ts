import type { KMSClient } from '@aws-sdk/client-kms';
import { TesseraError } from '../errors.js';
import { importOptional } from './optional-dependency.js';
import type { OpenedSigner, Signer } from './signer.js';

/** The AWS SDK for KMS (an optional peer dependency), loaded on first use. */
export type KmsSdk = typeof import('@aws-sdk/client-kms');

export function loadKmsSdk(): Promise<KmsSdk> {
  return importOptional<KmsSdk>('@aws-sdk/client-kms', 'An aws-kms: key');
}

/**
 * The part of the AWS SDK KMS client used here. A KMSClient satisfies it; whoever is given one
 * owns it and destroys it on close().
 */
export type KmsApi = Pick<KMSClient, 'send' | 'destroy'>;

export const KMS_URI_PREFIX = 'aws-kms:';
/** KMS's name for an Ed25519 key: the only kind identity keys are. */
export const ED25519_KEY_SPEC = 'ECC_NIST_EDWARDS25519';
// DER SubjectPublicKeyInfo header for an Ed25519 key (RFC 8410); the raw 32-byte key follows.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function kmsKeyIdOf(uri: string): string {
  const keyId = uri.startsWith(KMS_URI_PREFIX) ? uri.slice(KMS_URI_PREFIX.length) : '';
  if (!keyId) throw new TesseraError('key_not_found', `Not an ${KMS_URI_PREFIX} key URI`);
  return keyId;
}

/** Fetches the public key once; every sign() afterwards is a single KMS Sign call. */
export async function kmsSigner(client: KmsApi, keyId: string): Promise<Signer> {
  const { GetPublicKeyCommand, SignCommand } = await loadKmsSdk();
  const response = await kmsCall('GetPublicKey', () => client.send(new GetPublicKeyCommand({ KeyId: keyId })));
  if (response.KeySpec !== ED25519_KEY_SPEC || response.KeyUsage !== 'SIGN_VERIFY') {
    throw new TesseraError('key_store_error', `KMS key ${keyId} is not an Ed25519 SIGN_VERIFY key`);
  }
  const publicKey = rawEd25519PublicKey(response.PublicKey, keyId);
  // A plain frozen object: callers (and JSON.stringify) see the URI, the public key and sign().
  return Object.freeze({
    uri: KMS_URI_PREFIX + (response.KeyId ?? keyId),
    publicKey,
    async sign(data: Uint8Array): Promise<Uint8Array> {
      const { Signature } = await kmsCall('Sign', () =>
        client.send(new SignCommand({ KeyId: keyId, Message: data, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' })),
      );
      if (Signature?.length !== 64) throw new TesseraError('key_store_error', 'KMS Sign returned a malformed Ed25519 signature');
      return Signature;
    },
  });
}

/**
 * The signer for an `aws-kms:` URI on `new KMSClient({})`: region, endpoint (AWS_ENDPOINT_URL_KMS /
 * AWS_ENDPOINT_URL), credentials and retries all come from the standard AWS SDK chain.
 */
export async function openKmsSigner(uri: string): Promise<OpenedSigner> {
  const { KMSClient } = await loadKmsSdk();
  const client = new KMSClient({});
  try {
    const signer = await kmsSigner(client, kmsKeyIdOf(uri));
    return { signer, close: async () => client.destroy() };
  } catch (error) {
    client.destroy();
    throw error;
  }
}

/** Runs one KMS call, translating SDK and network failures into TesseraErrors. */
export async function kmsCall<T>(operation: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    throw kmsError(operation, error);
  }
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
