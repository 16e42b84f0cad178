import { SESSION_CERTIFICATE_TYPE, sessionIdOf } from '@tessera-broker/sdk';
import { isStrictEd25519PublicKey, verifyEd25519 } from '../crypto/ed25519.js';
import { TesseraError } from '../errors.js';
import { canonicalBytes, COMPACT_JWS, decodeJsonObject } from '../identity/proof.js';

/** A session certificate whose signature, subject and key binding checked out (not yet its times). */
export interface VerifiedCertificate {
  readonly sessionId: string;
  /** the primary key that signed it (its RFC 7638 thumbprint: the identity id until the identity's first key rotation) */
  readonly keyId: string;
  readonly publicKey: Uint8Array;
  /** epoch seconds, as signed */
  readonly iat: number;
  readonly exp: number;
  readonly generation: number;
}

const invalid = (detail: string) => new TesseraError('session_certificate_invalid', `Invalid session certificate: ${detail}.`);

const sameMembers = (object: Record<string, unknown>, members: string[]) => Object.keys(object).sort().join() === [...members].sort().join();

/**
 * Checks a session certificate (docs/PROTOCOL.md §3.1) the way proofs are checked: one spelling of
 * every segment, exactly the documented members, strict Ed25519 — signed by a primary key of the
 * identity (`primaryKeyOf` answers the key a kid names, only if it is one of the identity's keys
 * acceptable here), with `sub` naming that key, and naming its session by the session key's
 * thumbprint, so a certificate cannot be presented for another session. The broker (registration)
 * and `tessera audit verify` (offline) both use it; the lifetime policy is the registry's.
 */
export async function verifySessionCertificate(jws: string, primaryKeyOf: (keyId: string) => Uint8Array | undefined): Promise<VerifiedCertificate> {
  const match = COMPACT_JWS.exec(jws);
  if (!match) throw invalid('not a compact JWS with a 64-byte signature');
  const [, headerSegment, payloadSegment, signatureSegment] = match as unknown as [string, string, string, string];
  const header = decodeJsonObject(headerSegment, 'header', invalid);
  if (!sameMembers(header, ['alg', 'kid', 'typ']) || header.alg !== 'EdDSA' || header.typ !== SESSION_CERTIFICATE_TYPE) {
    throw invalid(`the header must be exactly {"alg":"EdDSA","typ":"${SESSION_CERTIFICATE_TYPE}","kid":<primary key id>}`);
  }
  const keyId = header.kid;
  const primaryKey = typeof keyId === 'string' ? primaryKeyOf(keyId) : undefined;
  if (typeof keyId !== 'string' || !primaryKey) throw invalid('kid is not a current key of the identity that registers it');
  const signature = canonicalBytes(signatureSegment, 'signature', invalid);
  if (!verifyEd25519(signature, new TextEncoder().encode(`${headerSegment}.${payloadSegment}`), primaryKey)) throw invalid('the signature does not verify under the identity key');

  const claims = decodeJsonObject(payloadSegment, 'payload', invalid);
  if (!sameMembers(claims, ['cnf', 'exp', 'gen', 'iat', 'jti', 'sub'])) throw invalid('the claims must be exactly sub, jti, iat, exp, gen and cnf');
  if (claims.sub !== keyId) throw invalid('sub is not the key that signed it');
  for (const name of ['iat', 'exp', 'gen'] as const) {
    if (!Number.isSafeInteger(claims[name]) || (claims[name] as number) < 0) throw invalid(`${name} must be a non-negative integer`);
  }
  const cnf = claims.cnf as Record<string, unknown> | null;
  const jwk = (typeof cnf === 'object' && cnf !== null && sameMembers(cnf, ['jwk']) ? cnf.jwk : undefined) as Record<string, unknown> | undefined;
  if (typeof jwk !== 'object' || jwk === null || !sameMembers(jwk, ['crv', 'kty', 'x']) || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    throw invalid('cnf must be exactly {"jwk":{"kty":"OKP","crv":"Ed25519","x":...}}');
  }
  const publicKey = new Uint8Array(canonicalBytes(jwk.x, 'cnf.jwk.x', invalid));
  if (!isStrictEd25519PublicKey(publicKey)) throw invalid('cnf.jwk.x must be the canonical encoding of an Ed25519 point that is not of small order');
  const sessionId = await sessionIdOf(publicKey);
  if (claims.jti !== sessionId) throw invalid('jti must be "ses_" + the RFC 7638 thumbprint of cnf.jwk');
  return { sessionId, keyId, publicKey, iat: claims.iat as number, exp: claims.exp as number, generation: claims.gen as number };
}
