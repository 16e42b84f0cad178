/**
 * A local OpenID Connect-style identity provider: keys generated with jose, a JWKS served over HTTP
 * on loopback (counting every fetch), and user tokens signed with jose. `rotate()` publishes a new
 * key and signs with it from then on, as a real issuer rotating its keys does.
 */
import { exportJWK, generateKeyPair, type JSONWebKeySet, type JWK, type JWTPayload, SignJWT } from 'jose';
import type { webcrypto } from 'node:crypto';
import { type FakeUpstream, startFakeUpstream } from './fake-upstream.js';

export type IssuerAlgorithm = 'EdDSA' | 'ES256' | 'RS256';

export interface IssuerKey {
  readonly kid: string;
  readonly alg: IssuerAlgorithm;
  readonly privateKey: webcrypto.CryptoKey;
  readonly publicJwk: JWK;
}

export interface TokenOptions {
  /** claims on top of iss, sub, aud, iat and exp (which these replace) */
  readonly claims?: JWTPayload;
  /** signing key (default: the current one) */
  readonly key?: IssuerKey;
  /** extra protected-header members, e.g. {jku: ...} */
  readonly header?: Record<string, unknown>;
  /** seconds relative to `now`: default iat 0, exp +600 */
  readonly iat?: number;
  readonly exp?: number;
  readonly nbf?: number;
}

export interface LocalIssuer {
  /** the issuer identifier (`iss`) */
  readonly issuer: string;
  readonly jwksUrl: string;
  readonly audience: string;
  /** the keys the JWKS publishes */
  jwks(): JSONWebKeySet;
  /** GETs of the JWKS so far */
  fetches(): number;
  /** publishes a new key and makes it the signing key */
  rotate(alg?: IssuerAlgorithm): Promise<IssuerKey>;
  /** a key that is never published (an attacker's) */
  unpublishedKey(alg?: IssuerAlgorithm): Promise<IssuerKey>;
  /** a user token for `sub`, times relative to `now` (epoch ms: the broker's TestClock) */
  token(sub: string, now: number, options?: TokenOptions): Promise<string>;
  /** from now on the JWKS answers with `body` (e.g. an oversized one); undefined restores it */
  serve(body: string | undefined): void;
  close(): Promise<void>;
}

export const USER_AUDIENCE = 'https://broker.test/users';

let keyCount = 0;

export async function newIssuerKey(alg: IssuerAlgorithm = 'ES256'): Promise<IssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `key-${++keyCount}`;
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export async function startLocalIssuer(alg: IssuerAlgorithm = 'ES256'): Promise<LocalIssuer> {
  const published: IssuerKey[] = [await newIssuerKey(alg)];
  let override: string | undefined;
  const jwks = (): JSONWebKeySet => ({ keys: published.map((key) => key.publicJwk) });
  const server: FakeUpstream = await startFakeUpstream((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(override ?? JSON.stringify(jwks()));
  });
  return {
    issuer: server.url,
    jwksUrl: `${server.url}/jwks.json`,
    audience: USER_AUDIENCE,
    jwks,
    fetches: () => server.seen.length,
    async rotate(nextAlg = alg) {
      const key = await newIssuerKey(nextAlg);
      published.push(key);
      return key;
    },
    unpublishedKey: (keyAlg = alg) => newIssuerKey(keyAlg),
    async token(sub, now, options = {}) {
      const key = options.key ?? published.at(-1)!;
      const seconds = Math.floor(now / 1000);
      const payload: JWTPayload = {
        iss: server.url,
        aud: USER_AUDIENCE,
        sub,
        iat: seconds + (options.iat ?? 0),
        exp: seconds + (options.exp ?? 600),
        ...(options.nbf !== undefined && { nbf: seconds + options.nbf }),
        ...options.claims,
      };
      return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...options.header }).sign(key.privateKey);
    },
    serve(body) {
      override = body;
    },
    close: () => server.close(),
  };
}
