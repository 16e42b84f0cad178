import { createHash } from 'node:crypto';
import * as ed from '@noble/ed25519';

// noble needs a synchronous SHA-512 for its sync API; node's native one is the fastest available.
ed.hashes.sha512 = (message: Uint8Array) => new Uint8Array(createHash('sha512').update(message).digest());

/**
 * Verifies a pure Ed25519 signature the RFC 8032 / FIPS 186-5 way: canonical point and scalar
 * encodings only, small-order public keys rejected. noble's default is ZIP-215 (lenient, for
 * consensus systems); a broker deciding who gets a secret wants the strict rules.
 */
export function verifyEd25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    return ed.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}
