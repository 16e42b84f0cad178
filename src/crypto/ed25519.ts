import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import * as ed from '@noble/ed25519';

// noble needs a synchronous SHA-512 for its sync API; node's native one is the fastest available.
ed.hashes.sha512 = (message: Uint8Array) => new Uint8Array(createHash('sha512').update(message).digest());

export type Ed25519Verifier = (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean;

/**
 * Whether `publicKey` is the canonical encoding (y < p, no x = 0 with the sign bit set) of a point
 * outside the 8-torsion. A small-order key verifies forged signatures under a cofactorless check
 * (OpenSSL's): with A = identity, R = identity and S = 0 pass for every message.
 */
export function isStrictEd25519PublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false;
  try {
    return !ed.Point.fromBytes(publicKey, false).isSmallOrder();
  } catch {
    return false;
  }
}

/**
 * Verifies a pure Ed25519 signature the RFC 8032 / FIPS 186-5 way in pure JS, for runtimes without
 * node:crypto: canonical point and scalar encodings only, small-order public keys rejected. noble's
 * default is ZIP-215 (lenient, for consensus systems); a broker deciding who gets a secret wants the
 * strict rules.
 */
export const verifyEd25519Portable: Ed25519Verifier = (signature, message, publicKey) => {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    return ed.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
};

/** Identities in use at once, give or take: past that, the least recently used keys are rebuilt. */
const KEY_CACHE_SIZE = 10_000;
/** base64url public key -> its KeyObject, or null for a key that is not strict; oldest use first. */
const keyObjects = new Map<string, KeyObject | null>();

function keyObjectOf(publicKey: Uint8Array): KeyObject | null {
  const x = Buffer.from(publicKey).toString('base64url');
  let key = keyObjects.get(x);
  if (key === undefined) {
    // OpenSSL checks S < L and R's encoding (it compares R bytes with the canonical [S]B - [k]A), not A.
    key = isStrictEd25519PublicKey(publicKey) ? createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }) : null;
    if (keyObjects.size >= KEY_CACHE_SIZE) keyObjects.delete(keyObjects.keys().next().value!);
  } else {
    keyObjects.delete(x);
  }
  keyObjects.set(x, key);
  return key;
}

/**
 * The broker's verifier: OpenSSL through node:crypto (native, several times faster than noble), with
 * one KeyObject per public key, built and checked once. Strict like verifyEd25519Portable, and
 * stricter on one point: the cofactorless equation refuses R with a small-order component.
 */
export const verifyEd25519: Ed25519Verifier = (signature, message, publicKey) => {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const key = keyObjectOf(publicKey);
  if (key === null) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
};
