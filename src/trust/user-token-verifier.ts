import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from 'jose';
import type { Clock } from '../clock.js';
import { sha256Base64url } from '../crypto/encoding.js';
import { TesseraError } from '../errors.js';
import type { TrustedIssuers } from '../store/repositories/trusted-issuers.js';
import type { IssuerProfile } from './issuer-profile.js';
import { claimMatches } from './user-claims.js';
import { USER_TOKEN_ALGORITHMS } from './issuer-profile.js';
import { DEFAULT_REMOTE_JWKS_SETTINGS, type KeyResolver, RemoteJwks, type RemoteJwksSettings } from './jwks.js';

/** Larger tokens are refused before any parsing: real ID and access tokens are a few KiB. */
export const MAX_USER_TOKEN_BYTES = 8 * 1024;
/** How far exp, nbf and iat may be off the broker clock (the issuer's clock is not ours). */
export const USER_TOKEN_CLOCK_SKEW_SECONDS = 60;
/** Tokens issued longer ago are refused whatever their exp: a user assertion is fresh. */
export const USER_TOKEN_MAX_AGE_SECONDS = 24 * 3600;

/** Three base64url segments and a signature: no JWE (five), no unsecured JWT (empty signature). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** A user token that passed its issuer's profile. The raw token is not kept: it is a bearer credential. */
export interface VerifiedUserToken {
  readonly issuer: string;
  readonly subject: string;
  /** every claim of the token's payload */
  readonly claims: JWTPayload;
  /** epoch ms */
  readonly expiresAt: number;
  /** SHA-256 (base64url) of the token, to recognise it in audit without storing it */
  readonly tokenSha256: string;
}

/**
 * Verifies a user's ID token or JWT access token against the trusted issuer its `iss` names
 * (docs/PROTOCOL.md §13). jose checks the signature and the registered claims; this class picks
 * the profile and the key source, and turns every failure into one of the stable error codes.
 * Keys come only from the profile: `jku`, `x5u`, `jwk` and `x5c` headers are never used.
 */
export class UserTokenVerifier {
  /** one cache per JWKS URL, kept across requests (and across removing and re-adding the issuer) */
  readonly #remote = new Map<string, RemoteJwks>();

  constructor(
    private readonly issuers: Pick<TrustedIssuers, 'get'>,
    private readonly clock: Clock,
    private readonly jwksSettings: RemoteJwksSettings = DEFAULT_REMOTE_JWKS_SETTINGS,
  ) {}

  async verify(token: string): Promise<VerifiedUserToken> {
    const invalid = (why: string, cause?: unknown) => new TesseraError('user_token_invalid', `The user token ${why}.`, { cause });
    if (Buffer.byteLength(token) > MAX_USER_TOKEN_BYTES) throw invalid(`is larger than ${MAX_USER_TOKEN_BYTES} bytes`);
    if (!COMPACT_JWS.test(token)) throw invalid('is not a signed JWT (compact JWS)');
    let claimedIssuer: unknown;
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      claimedIssuer = decodeJwt(token).iss;
    } catch (error) {
      throw invalid('is not a signed JWT (compact JWS)', error);
    }
    // Before any key is looked at: HS256 (a public key as HMAC secret) and `none` end here.
    if (typeof alg !== 'string' || !(USER_TOKEN_ALGORITHMS as readonly string[]).includes(alg)) {
      throw invalid(`uses algorithm ${JSON.stringify(alg)}; allowed: ${USER_TOKEN_ALGORITHMS.join(', ')}`);
    }
    if (typeof claimedIssuer !== 'string') throw invalid('has no iss claim');
    const profile = await this.issuers.get(claimedIssuer);
    if (!profile) throw new TesseraError('issuer_unknown', `The user token's issuer ${JSON.stringify(claimedIssuer.slice(0, 200))} is not trusted by this broker.`);

    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, this.keysOf(profile), {
        issuer: profile.issuer,
        audience: profile.audience,
        algorithms: [...profile.algorithms],
        requiredClaims: ['sub', 'exp', 'iat'],
        currentDate: new Date(this.clock.now()),
        clockTolerance: USER_TOKEN_CLOCK_SKEW_SECONDS,
        maxTokenAge: USER_TOKEN_MAX_AGE_SECONDS,
      }));
    } catch (error) {
      throw verificationError(error, profile);
    }
    if (typeof claims.sub !== 'string' || claims.sub === '') throw invalid('has no sub claim');
    for (const [name, value] of Object.entries(profile.requiredClaims)) {
      if (!claimMatches(claims[name], value)) throw invalid(`lacks the claim ${name}=${value} that issuer ${profile.issuer} requires`);
    }
    return { issuer: profile.issuer, subject: claims.sub, claims, expiresAt: claims.exp! * 1000, tokenSha256: sha256Base64url(token) };
  }

  private keysOf(profile: IssuerProfile): KeyResolver {
    if ('jwks' in profile.keys) return createLocalJWKSet(profile.keys.jwks);
    const url = profile.keys.jwksUrl;
    let remote = this.#remote.get(url);
    if (!remote) {
      remote = new RemoteJwks(url, this.clock, this.jwksSettings);
      this.#remote.set(url, remote);
    }
    return remote.resolve;
  }
}

function verificationError(error: unknown, profile: IssuerProfile): TesseraError {
  if (error instanceof TesseraError) return error; // issuer_keys_unavailable from the JWKS fetch
  const fail = (why: string) => new TesseraError('user_token_invalid', `The user token ${why}.`, { cause: error });
  if (error instanceof errors.JWTExpired) {
    return new TesseraError('user_token_expired', error.claim === 'iat' ? `The user token was issued more than ${USER_TOKEN_MAX_AGE_SECONDS} s ago.` : 'The user token has expired.', { cause: error });
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const why: Record<string, string> = {
      aud: `is not for audience ${profile.audience}`,
      iss: `is not from issuer ${profile.issuer}`,
      nbf: 'is not valid yet (nbf)',
      iat: 'is issued in the future (iat)',
    };
    return fail(why[error.claim] ?? `fails its ${error.claim} claim check: ${error.reason}`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return fail(`uses an algorithm issuer ${profile.issuer} does not allow (${profile.algorithms.join(', ')})`);
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) return fail(`is signed with a key (kid) issuer ${profile.issuer} does not publish`);
  if (error instanceof errors.JWSSignatureVerificationFailed) return fail('signature does not verify');
  if (error instanceof errors.JOSEError) return fail(`is malformed (${error.message})`);
  return fail('could not be verified');
}
