import { generateKeyPairSync, sign } from 'node:crypto';
import type { Signer } from '../signers/signer.js';

/**
 * A fresh Ed25519 session key in this process's memory. The private key lives only in this closure:
 * it is no property of the signer, so it is never serialised, logged or persisted, and it is gone
 * with the process (or once the session is replaced and the signer dropped).
 */
export function memorySessionSigner(): Signer {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'));
  return Object.freeze({
    uri: 'memory:session',
    publicKey: raw,
    sign: async (data: Uint8Array) => new Uint8Array(sign(null, data, privateKey)),
  });
}
