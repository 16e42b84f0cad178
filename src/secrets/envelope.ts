/**
 * Envelope encryption for root secrets: each secret gets a fresh random AES-256 data key; the data
 * key is wrapped by a key that never leaves the KMS/HSM. Stealing the database yields ciphertext
 * only, and the key store sees 32-byte data keys, never the secrets themselves.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { base64url } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import type { WrappingKey } from '../keys/key-store.js';

export interface SealedSecret {
  /** base64url(iv || AES-256-GCM ciphertext || tag) */
  readonly ciphertext: string;
  /** base64url of the data key as wrapped by the key store */
  readonly wrappedKey: string;
  readonly wrappingKeyUri: string;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * `context` is bound as GCM additional data (e.g. `backend:<name>`): a sealed secret copied into
 * another row does not open there.
 */
export async function seal(plaintext: string, wrappingKey: WrappingKey, context: string): Promise<SealedSecret> {
  const dataKey = randomBytes(32);
  try {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', dataKey, iv).setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return {
      ciphertext: base64url.encode(Buffer.concat([iv, body, cipher.getAuthTag()])),
      wrappedKey: base64url.encode(await wrappingKey.wrap(dataKey)),
      wrappingKeyUri: wrappingKey.uri,
    };
  } finally {
    dataKey.fill(0);
  }
}

export async function open(sealed: SealedSecret, wrappingKey: WrappingKey, context: string): Promise<string> {
  const data = Buffer.from(base64url.decode(sealed.ciphertext));
  if (data.length < IV_BYTES + TAG_BYTES) throw new TesseraError('internal', 'sealed secret is truncated');
  const dataKey = Buffer.from(await wrappingKey.unwrap(base64url.decode(sealed.wrappedKey)));
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, data.subarray(0, IV_BYTES)).setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    return Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch (error) {
    throw new TesseraError('internal', 'sealed secret does not open: corrupt, tampered with, or sealed for another context', { cause: error });
  } finally {
    dataKey.fill(0);
  }
}

/**
 * The same sealed secret with its data key wrapped by `to` instead of `from`: only the 32-byte data
 * key passes through memory (and is zeroed); the secret's ciphertext is not opened, nor changed.
 */
export async function rewrap(sealed: SealedSecret, from: WrappingKey, to: WrappingKey): Promise<SealedSecret> {
  const dataKey = Buffer.from(await from.unwrap(base64url.decode(sealed.wrappedKey)));
  try {
    return { ciphertext: sealed.ciphertext, wrappedKey: base64url.encode(await to.wrap(dataKey)), wrappingKeyUri: to.uri };
  } finally {
    dataKey.fill(0);
  }
}
