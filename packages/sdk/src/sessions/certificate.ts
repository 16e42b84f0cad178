import type { JWK } from 'jose';
import { ed25519PublicJwk, keyThumbprint, signCompactJws } from '../jws.js';
import type { Signer } from '../signers/signer.js';

/**
 * The session certificate (docs/PROTOCOL.md §3.1): the identity's primary key, once per session,
 * certifies an in-memory session key, which then signs the session's proofs. The broker checks it
 * in src/sessions/certificate.ts.
 */
export const SESSION_CERTIFICATE_TYPE = 'tessera-session+jwt';
/** Session ids (`kid` of session proofs) start with this; identity ids (thumbprints) never do. */
export const SESSION_ID_PREFIX = 'ses_';

export interface SessionCertificateClaims {
  /** the identity id */
  readonly sub: string;
  /** the session id: SESSION_ID_PREFIX + RFC 7638 thumbprint of cnf.jwk */
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  /** strictly increasing per identity: a lower one than already seen means a cloned agent */
  readonly gen: number;
  readonly cnf: { readonly jwk: JWK };
}

/** The session id of a session public key: self-certifying, like an identity id. */
export async function sessionIdOf(sessionPublicKey: Uint8Array): Promise<string> {
  return SESSION_ID_PREFIX + (await keyThumbprint(sessionPublicKey));
}

export interface SessionTerms {
  /** epoch seconds */
  readonly iat: number;
  /** epoch seconds */
  readonly exp: number;
  readonly gen: number;
}

/** Signs a session certificate with the primary key: one KMS/HSM signature per session. */
export async function createSessionCertificate(primary: Signer, identityId: string, sessionPublicKey: Uint8Array, terms: SessionTerms): Promise<string> {
  const claims: SessionCertificateClaims = {
    sub: identityId,
    jti: await sessionIdOf(sessionPublicKey),
    iat: terms.iat,
    exp: terms.exp,
    gen: terms.gen,
    cnf: { jwk: ed25519PublicJwk(sessionPublicKey) },
  };
  return signCompactJws(primary, { alg: 'EdDSA', typ: SESSION_CERTIFICATE_TYPE, kid: identityId }, { ...claims });
}
