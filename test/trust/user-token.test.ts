/**
 * User tokens from a local issuer signed with jose, verified against its trusted-issuer profile:
 * the good token, and every way an attacker (or a misconfigured issuer) gets one refused: wrong
 * `aud`/`iss`/`alg` (HS256 keyed with the public key, `none`), expired, not yet valid, issued in
 * the future, oversized, `jku`/`jwk` headers, required claims; and the JWKS cache: an unknown `kid`
 * is fetched again after a rotation, at most once per cooldown on the injected clock.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64url, SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DatabaseAuditLog } from '../../src/audit/audit-log.js';
import { openStore, type Store } from '../../src/store/database.js';
import { DEFAULT_REMOTE_JWKS_SETTINGS } from '../../src/trust/jwks.js';
import { TrustService } from '../../src/trust/trust-service.js';
import { MAX_USER_TOKEN_BYTES, USER_TOKEN_CLOCK_SKEW_SECONDS, UserTokenVerifier } from '../../src/trust/user-token-verifier.js';
import { TestClock } from '../support/clock.js';
import { type LocalIssuer, newIssuerKey, startLocalIssuer } from '../support/issuer.js';

const NOW = Date.UTC(2026, 0, 15, 12);
const ADMIN = 'idn_admin';

describe('user tokens from a trusted issuer', () => {
  let dir: string;
  let store: Store;
  let trust: TrustService;
  let clock: TestClock;
  let issuer: LocalIssuer;
  let verifier: UserTokenVerifier;

  const failure = (promise: Promise<unknown>) => promise.then(() => expect.unreachable('the token was accepted'), (error: unknown) => error);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-user-token-'));
    store = await openStore(`sqlite:${join(dir, 'tessera.db')}`);
    clock = new TestClock();
    trust = new TrustService(store, new DatabaseAuditLog(store.repos, clock), clock);
  });

  afterAll(async () => {
    await store?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // A fresh issuer and verifier (so a fresh JWKS cache) per test: fetch counts start at zero.
  beforeEach(async () => {
    clock.pin(NOW);
    issuer = await startLocalIssuer('ES256');
    await trust.add({ issuer: issuer.issuer, audience: issuer.audience, jwksUrl: issuer.jwksUrl, requiredClaims: {} }, ADMIN);
    verifier = new UserTokenVerifier(store.repos.trustedIssuers, clock);
    return async () => {
      await trust.remove(issuer.issuer, ADMIN);
      await issuer.close();
    };
  });

  it('accepts a good token: issuer, subject, claims, expiry and the token hash (never the token)', async () => {
    const token = await issuer.token('alice', clock.now(), { claims: { groups: ['support'], email: 'alice@example.com' } });
    const verified = await verifier.verify(token);
    expect(verified).toMatchObject({ issuer: issuer.issuer, subject: 'alice', expiresAt: NOW + 600_000, claims: { groups: ['support'], email: 'alice@example.com' } });
    expect(verified.tokenSha256).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(verified)).not.toContain(token);
    // The keys are cached: a second token costs no fetch.
    await verifier.verify(await issuer.token('bob', clock.now()));
    expect(issuer.fetches()).toBe(1);
  });

  it('refuses a token for another audience', async () => {
    const error = await failure(verifier.verify(await issuer.token('alice', clock.now(), { claims: { aud: 'https://other.test' } })));
    expect(error).toMatchObject({ code: 'user_token_invalid', status: 403, message: `The user token is not for audience ${issuer.audience}.` });
  });

  it('refuses a token whose iss is not trusted (issuer_unknown), without fetching any key', async () => {
    const error = await failure(verifier.verify(await issuer.token('alice', clock.now(), { claims: { iss: 'https://evil.test' } })));
    expect(error).toMatchObject({ code: 'issuer_unknown', status: 403 });
    expect(issuer.fetches()).toBe(0);
  });

  it('refuses a token claiming a trusted iss but signed by another issuer\'s key', async () => {
    const other = await startLocalIssuer('ES256');
    try {
      const forged = await other.token('alice', clock.now(), { claims: { iss: issuer.issuer } });
      expect(await failure(verifier.verify(forged))).toMatchObject({ code: 'user_token_invalid' });
      expect(other.fetches()).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('refuses HS256 keyed with the issuer\'s public key (algorithm confusion)', async () => {
    const [published] = issuer.jwks().keys;
    for (const secret of [JSON.stringify(published), `${published!.x}${published!.y}`]) {
      const token = await new SignJWT({ iss: issuer.issuer, aud: issuer.audience, sub: 'mallory', iat: NOW / 1000, exp: NOW / 1000 + 600 })
        .setProtectedHeader({ alg: 'HS256', kid: published!.kid! })
        .sign(new TextEncoder().encode(secret));
      const error = await failure(verifier.verify(token));
      expect(error).toMatchObject({ code: 'user_token_invalid', message: 'The user token uses algorithm "HS256"; allowed: EdDSA, ES256, RS256.' });
    }
    expect(issuer.fetches()).toBe(0);
  });

  it('refuses alg none, with or without a signature segment', async () => {
    const encode = (value: object) => base64url.encode(JSON.stringify(value));
    const unsigned = `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ iss: issuer.issuer, aud: issuer.audience, sub: 'mallory', iat: NOW / 1000, exp: NOW / 1000 + 600 })}`;
    expect(await failure(verifier.verify(`${unsigned}.`))).toMatchObject({ code: 'user_token_invalid', message: 'The user token is not a signed JWT (compact JWS).' });
    expect(await failure(verifier.verify(`${unsigned}.c2ln`))).toMatchObject({ code: 'user_token_invalid', message: 'The user token uses algorithm "none"; allowed: EdDSA, ES256, RS256.' });
  });

  it('refuses an allowed algorithm the issuer\'s profile does not list', async () => {
    await trust.remove(issuer.issuer, ADMIN);
    await trust.add({ issuer: issuer.issuer, audience: issuer.audience, jwksUrl: issuer.jwksUrl, algorithms: ['RS256'] }, ADMIN);
    const error = await failure(verifier.verify(await issuer.token('alice', clock.now())));
    expect(error).toMatchObject({ code: 'user_token_invalid', message: expect.stringContaining('uses an algorithm issuer') });
  });

  it('refuses an expired token, and accepts one expired within the allowed clock skew', async () => {
    const expired = await issuer.token('alice', clock.now(), { iat: -3600, exp: -(USER_TOKEN_CLOCK_SKEW_SECONDS + 1) });
    expect(await failure(verifier.verify(expired))).toMatchObject({ code: 'user_token_expired', status: 403, message: 'The user token has expired.' });
    const withinSkew = await issuer.token('alice', clock.now(), { iat: -3600, exp: -(USER_TOKEN_CLOCK_SKEW_SECONDS - 1) });
    await expect(verifier.verify(withinSkew)).resolves.toMatchObject({ subject: 'alice' });
    // The same good token, once the injected clock has moved past its exp.
    const good = await issuer.token('alice', clock.now());
    clock.advance((600 + USER_TOKEN_CLOCK_SKEW_SECONDS + 1) * 1000);
    expect(await failure(verifier.verify(good))).toMatchObject({ code: 'user_token_expired' });
  });

  it('refuses a token whose nbf or iat is in the future, or that was issued more than a day ago', async () => {
    expect(await failure(verifier.verify(await issuer.token('alice', clock.now(), { nbf: 300 })))).toMatchObject({ code: 'user_token_invalid', message: 'The user token is not valid yet (nbf).' });
    expect(await failure(verifier.verify(await issuer.token('alice', clock.now(), { iat: 300 })))).toMatchObject({ code: 'user_token_invalid', message: 'The user token is issued in the future (iat).' });
    const old = await issuer.token('alice', clock.now(), { iat: -25 * 3600, exp: 3600 });
    expect(await failure(verifier.verify(old))).toMatchObject({ code: 'user_token_expired', message: 'The user token was issued more than 86400 s ago.' });
  });

  it('refuses a token without sub or exp', async () => {
    expect(await failure(verifier.verify(await issuer.token('', clock.now())))).toMatchObject({ code: 'user_token_invalid', message: 'The user token has no sub claim.' });
    expect(await failure(verifier.verify(await issuer.token('alice', clock.now(), { claims: { exp: undefined } })))).toMatchObject({ code: 'user_token_invalid' });
  });

  it('refuses an oversized token before parsing or fetching anything', async () => {
    const token = await issuer.token('alice', clock.now(), { claims: { padding: 'x'.repeat(MAX_USER_TOKEN_BYTES) } });
    expect(await failure(verifier.verify(token))).toMatchObject({ code: 'user_token_invalid', message: `The user token is larger than ${MAX_USER_TOKEN_BYTES} bytes.` });
    expect(issuer.fetches()).toBe(0);
  });

  it('never follows jku or trusts an embedded jwk: a token signed by an attacker key is refused', async () => {
    const attacker = await startLocalIssuer('ES256');
    try {
      const [attackerKey] = attacker.jwks().keys;
      const key = await newIssuerKey('ES256');
      // kid of the attacker's published key, its JWKS named in jku, its public key embedded as jwk.
      const forged = await issuer.token('alice', clock.now(), {
        key: { ...key, kid: attackerKey!.kid! },
        header: { jku: attacker.jwksUrl, x5u: `${attacker.issuer}/cert.pem`, jwk: key.publicJwk },
      });
      expect(await failure(verifier.verify(forged))).toMatchObject({ code: 'user_token_invalid', message: expect.stringContaining('does not publish') });
      // Same with the kid of the issuer's real key: the signature does not verify under it.
      const [real] = issuer.jwks().keys;
      const sameKid = await issuer.token('alice', clock.now(), { key: { ...key, kid: real!.kid! }, header: { jku: attacker.jwksUrl, jwk: key.publicJwk } });
      expect(await failure(verifier.verify(sameKid))).toMatchObject({ code: 'user_token_invalid', message: 'The user token signature does not verify.' });
      expect(attacker.fetches()).toBe(0);
    } finally {
      await attacker.close();
    }
  });

  it('requires the profile\'s claims: a value, or a member of a list claim', async () => {
    await trust.remove(issuer.issuer, ADMIN);
    await trust.add({ issuer: issuer.issuer, audience: issuer.audience, jwksUrl: issuer.jwksUrl, requiredClaims: { email_verified: 'true', groups: 'staff' } }, ADMIN);
    await expect(verifier.verify(await issuer.token('alice', clock.now(), { claims: { email_verified: true, groups: ['staff', 'support'] } }))).resolves.toMatchObject({ subject: 'alice' });
    for (const claims of [{ email_verified: false, groups: ['staff'] }, { email_verified: true, groups: ['support'] }, { email_verified: true }]) {
      const error = await failure(verifier.verify(await issuer.token('bob', clock.now(), { claims })));
      expect(error).toMatchObject({ code: 'user_token_invalid', message: expect.stringMatching(/^The user token lacks the claim (email_verified=true|groups=staff) that issuer/) });
    }
  });

  it('an unknown kid after a rotation: fetched again once the cooldown has passed, not before', async () => {
    await verifier.verify(await issuer.token('alice', clock.now()));
    expect(issuer.fetches()).toBe(1);
    await issuer.rotate();
    const rotated = await issuer.token('alice', clock.now());

    // Within the cooldown after the first fetch: no new fetch, the new kid is unknown.
    clock.advance(DEFAULT_REMOTE_JWKS_SETTINGS.cooldownMs - 1);
    expect(await failure(verifier.verify(rotated))).toMatchObject({ code: 'user_token_invalid', message: expect.stringContaining('does not publish') });
    expect(issuer.fetches()).toBe(1);

    clock.advance(1);
    await expect(verifier.verify(rotated)).resolves.toMatchObject({ subject: 'alice' });
    expect(issuer.fetches()).toBe(2);

    // A flood of made-up kids right after: one fetch per cooldown at most, here none.
    const stranger = await issuer.unpublishedKey();
    for (let i = 0; i < 5; i++) await failure(verifier.verify(await issuer.token('alice', clock.now(), { key: stranger })));
    expect(issuer.fetches()).toBe(2);
    clock.advance(DEFAULT_REMOTE_JWKS_SETTINGS.cooldownMs);
    for (let i = 0; i < 5; i++) await failure(verifier.verify(await issuer.token('alice', clock.now(), { key: stranger })));
    expect(issuer.fetches()).toBe(3);
  });

  it('fetches the keys again once they are older than the cache age', async () => {
    await verifier.verify(await issuer.token('alice', clock.now()));
    clock.advance(DEFAULT_REMOTE_JWKS_SETTINGS.cacheMaxAgeMs);
    await verifier.verify(await issuer.token('alice', clock.now()));
    expect(issuer.fetches()).toBe(2);
  });

  it('an oversized or malformed JWKS response: issuer_keys_unavailable, retried only after the cooldown', async () => {
    issuer.serve(JSON.stringify({ keys: issuer.jwks().keys, padding: 'x'.repeat(DEFAULT_REMOTE_JWKS_SETTINGS.maxBytes) }));
    const token = await issuer.token('alice', clock.now());
    expect(await failure(verifier.verify(token))).toMatchObject({ code: 'issuer_keys_unavailable', status: 503, message: expect.stringContaining(`larger than ${DEFAULT_REMOTE_JWKS_SETTINGS.maxBytes} bytes`) });
    expect(await failure(verifier.verify(token))).toMatchObject({ code: 'issuer_keys_unavailable' });
    expect(issuer.fetches()).toBe(1);

    clock.advance(DEFAULT_REMOTE_JWKS_SETTINGS.cooldownMs);
    issuer.serve(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));
    expect(await failure(verifier.verify(token))).toMatchObject({ code: 'issuer_keys_unavailable', message: expect.stringContaining('public OKP, EC or RSA JWK') });

    clock.advance(DEFAULT_REMOTE_JWKS_SETTINGS.cooldownMs);
    issuer.serve(undefined);
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: 'alice' });
    expect(issuer.fetches()).toBe(3);
  });

  it('an issuer whose JWKS URL does not answer: issuer_keys_unavailable', async () => {
    await issuer.close();
    const error = await failure(verifier.verify(await issuer.token('alice', clock.now())));
    expect(error).toMatchObject({ code: 'issuer_keys_unavailable', message: expect.stringContaining('connection failed') });
  });

  it('a static JWKS (--jwks-file): EdDSA and RS256 keys verify without any fetch', async () => {
    for (const alg of ['EdDSA', 'RS256'] as const) {
      const offline = await startLocalIssuer(alg);
      try {
        await trust.add({ issuer: offline.issuer, audience: offline.audience, jwks: offline.jwks() }, ADMIN);
        await expect(verifier.verify(await offline.token('carol', clock.now()))).resolves.toMatchObject({ issuer: offline.issuer, subject: 'carol' });
        expect(offline.fetches()).toBe(0);
        await trust.remove(offline.issuer, ADMIN);
      } finally {
        await offline.close();
      }
    }
  });
});
