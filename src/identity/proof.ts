import { PROOF_MAX_SKEW_SECONDS, PROOF_TYPE, PROOF_SCHEME, type ProofClaims, SESSION_ID_PREFIX } from '@tessera-broker/sdk';
import { verifyEd25519 } from '../crypto/ed25519.js';
import { TesseraError } from '../errors.js';
import { duplicateMember } from '../json-scan.js';

/**
 * Checking the proof an identity signs for every request (docs/PROTOCOL.md); the SDK creates it
 * (createProof in @tessera-broker/sdk).
 */
export { bodyHash, createProof, PROOF_MAX_SKEW_SECONDS, PROOF_SCHEME, PROOF_TYPE, type ProofClaims, type ProofTarget } from '@tessera-broker/sdk';

/**
 * Epoch ms from which a proof dated `iat` is stale: it passes while floor(now / 1000) <= iat + skew,
 * so until just before (iat + skew + 1) s. Until then its jti must stay remembered and the stored
 * proof stays out of reviewers' sight.
 */
export function proofAcceptedUntil(iat: number): number {
  return (iat + PROOF_MAX_SKEW_SECONDS + 1) * 1000;
}

/** How far the clocks of brokers sharing one database may disagree: jtis are kept, and proofs withheld, that much longer. */
export const BROKER_CLOCK_MARGIN_MS = PROOF_MAX_SKEW_SECONDS * 1000;

/** Epoch ms after which no broker accepts a proof dated `iat`: its jti may be forgotten, the stored proof shown. */
export function proofReplayableUntil(iat: number): number {
  return proofAcceptedUntil(iat) + BROKER_CLOCK_MARGIN_MS;
}

/**
 * A session id (docs/PROTOCOL.md §3.1): `ses_` + a 43-character thumbprint. Identity ids are bare
 * 43-character thumbprints, so the length alone tells the two kinds of `kid` apart.
 */
export function isSessionId(kid: string): boolean {
  return kid.length === SESSION_ID_PREFIX.length + 43 && kid.startsWith(SESSION_ID_PREFIX);
}

export interface ParsedProof {
  /** the identity id (primary-key proof) or a session id (session proof: `iss` is then the identity id) */
  readonly kid: string;
  readonly claims: ProofClaims;
  readonly signingInput: Uint8Array;
  readonly signature: Uint8Array;
}

export const COMPACT_JWS = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{86})$/;
const MAX_PROOF_LENGTH = 4096;

function malformed(detail: string): TesseraError {
  return new TesseraError('proof_malformed', `Malformed proof: ${detail}.`);
}

/**
 * One spelling per proof: a base64url decoder ignores set padding bits, so several strings decode
 * to the same bytes; only the one the bytes encode back to is accepted.
 */
export function canonicalBytes(segment: string, what: string, fail: (detail: string) => TesseraError = malformed): Buffer {
  const bytes = Buffer.from(segment, 'base64url');
  if (bytes.toString('base64url') !== segment) throw fail(`${what} is not canonical base64url`);
  return bytes;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Strict UTF-8 JSON object: no member twice (JSON.parse would keep the last one silently). */
export function decodeJsonObject(segment: string, what: string, fail: (detail: string) => TesseraError = malformed): Record<string, unknown> {
  let text: string;
  let value: unknown;
  try {
    text = UTF8.decode(canonicalBytes(segment, what, fail));
    value = JSON.parse(text);
  } catch (error) {
    throw error instanceof TesseraError ? error : fail(`${what} is not base64url UTF-8 JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail(`${what} is not a JSON object`);
  const duplicate = duplicateMember(text);
  if (duplicate !== null) throw fail(`${what} has member "${duplicate}" more than once`);
  return value as Record<string, unknown>;
}

const HEADER_MEMBERS = ['alg', 'kid', 'typ'];

/** Reads `Authorization: Proof <jws>`; checks shape only, not the signature. */
export function parseProofHeader(authorization: string | undefined): ParsedProof {
  if (!authorization) throw new TesseraError('proof_missing');
  const [scheme, token, ...rest] = authorization.split(' ');
  if (scheme !== PROOF_SCHEME || !token || rest.length > 0) throw new TesseraError('proof_missing', 'Expected "Authorization: Proof <compact JWS>".');
  if (token.length > MAX_PROOF_LENGTH) throw malformed('too long');
  const match = COMPACT_JWS.exec(token);
  if (!match) throw malformed('not a compact JWS with a 64-byte signature');
  const [, headerSegment, payloadSegment, signatureSegment] = match as unknown as [string, string, string, string];

  const header = decodeJsonObject(headerSegment, 'header');
  // Nothing a verifier elsewhere could read differently (crit, jwk, x5u, b64, ...).
  if (Object.keys(header).sort().join() !== HEADER_MEMBERS.join()) throw malformed('the header must have exactly the members alg, typ and kid');
  if (header.alg !== 'EdDSA') throw malformed('alg must be EdDSA');
  if (header.typ !== PROOF_TYPE) throw malformed(`typ must be ${PROOF_TYPE}`);
  if (typeof header.kid !== 'string' || header.kid.length === 0) throw malformed('kid is required');

  const payload = decodeJsonObject(payloadSegment, 'payload');
  for (const name of ['iss', 'aud', 'jti', 'htm', 'htu', 'bh'] as const) {
    if (typeof payload[name] !== 'string' || payload[name] === '') throw malformed(`claim ${name} must be a non-empty string`);
  }
  if (!Number.isInteger(payload.iat)) throw malformed('claim iat must be an integer (seconds)');
  if ((payload.jti as string).length > 128) throw malformed('claim jti is longer than 128 characters');
  // A session proof's iss is checked against its session's identity once the session is known.
  if (!isSessionId(header.kid) && payload.iss !== header.kid) throw malformed('iss must equal kid');

  return {
    kid: header.kid,
    claims: payload as unknown as ProofClaims,
    signingInput: new TextEncoder().encode(`${headerSegment}.${payloadSegment}`),
    signature: canonicalBytes(signatureSegment, 'signature'),
  };
}

export interface ProofExpectation {
  readonly audience: string;
  readonly method: string;
  readonly url: string;
  readonly bodyHash: string;
  readonly nowSeconds: number;
}

/** Signature first: nothing about an unauthenticated proof is trusted or reported back. */
export function checkProof(proof: ParsedProof, publicKey: Uint8Array, expected: ProofExpectation): void {
  if (!verifyEd25519(proof.signature, proof.signingInput, publicKey)) throw new TesseraError('proof_bad_signature');
  const { claims } = proof;
  if (Math.abs(claims.iat - expected.nowSeconds) > PROOF_MAX_SKEW_SECONDS) throw new TesseraError('proof_stale');
  if (claims.aud !== expected.audience) throw new TesseraError('proof_wrong_audience');
  if (claims.htm !== expected.method.toUpperCase()) throw new TesseraError('proof_wrong_method');
  if (claims.htu !== expected.url) throw new TesseraError('proof_wrong_url');
  if (claims.bh !== expected.bodyHash) throw new TesseraError('proof_wrong_body');
}
