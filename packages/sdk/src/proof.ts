import { hash, randomUUID } from 'node:crypto';
import { signCompactJws } from './jws.js';
import type { Signer } from './signers/signer.js';

/**
 * The proof an identity signs for every request (docs/PROTOCOL.md): a compact JWS binding the
 * identity key to this broker (aud), this request (htm, htu, bh) and this moment (iat, jti).
 * The broker checks it in src/identity/proof.ts.
 */
export const PROOF_TYPE = 'tessera-proof+jwt';
export const PROOF_MAX_SKEW_SECONDS = 60;
export const PROOF_SCHEME = 'Proof';

export interface ProofClaims {
  readonly iss: string;
  readonly aud: string;
  readonly iat: number;
  readonly jti: string;
  readonly htm: string;
  readonly htu: string;
  readonly bh: string;
}

export interface ProofTarget {
  readonly method: string;
  /** Absolute URL including the query string, without fragment. */
  readonly url: string;
  readonly body: Uint8Array | string;
}

/** SHA-256 of the exact body bytes, base64url: the `bh` claim. */
export function bodyHash(body: Uint8Array | string): string {
  return hash('sha256', body, 'base64url');
}

/**
 * Signs a proof for one request. With the primary key, `kid` is the identity id; with a session key
 * (docs/PROTOCOL.md §3.1), `kid` is the session id and `signer` the session key, `iss` staying the identity id.
 */
export async function createProof(
  signer: Signer,
  identityId: string,
  audience: string,
  target: ProofTarget,
  nowSeconds = Math.floor(Date.now() / 1000),
  kid = identityId,
): Promise<string> {
  const claims: ProofClaims = {
    iss: identityId,
    aud: audience,
    iat: nowSeconds,
    jti: randomUUID(),
    htm: target.method.toUpperCase(),
    htu: target.url,
    bh: bodyHash(target.body),
  };
  return signCompactJws(signer, { alg: 'EdDSA', typ: PROOF_TYPE, kid }, { ...claims });
}
