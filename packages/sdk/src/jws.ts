import { calculateJwkThumbprint, type JWK } from 'jose';
import type { Signer } from './signers/signer.js';

const base64url = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString('base64url');

/**
 * jose's sign() only takes in-process keys; our keys stay in KMS/HSM. So the compact JWS is built
 * here (RFC 7515 §7.1) and only the signing input crosses into the key store.
 */
export async function signCompactJws(signer: Signer, header: Record<string, unknown>, payload: Record<string, unknown>): Promise<string> {
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  const signature = await signer.sign(new TextEncoder().encode(signingInput));
  return `${signingInput}.${base64url(signature)}`;
}

export function ed25519PublicJwk(publicKey: Uint8Array): JWK {
  return { kty: 'OKP', crv: 'Ed25519', x: base64url(publicKey) };
}

/** RFC 7638 thumbprint of the Ed25519 public key: the stable key id used for identities and the authority. */
export function keyThumbprint(publicKey: Uint8Array): Promise<string> {
  return calculateJwkThumbprint(ed25519PublicJwk(publicKey), 'sha256');
}
