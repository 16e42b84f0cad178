import type { webcrypto } from 'node:crypto';
import { createLocalJWKSet, errors, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters } from 'jose';
import type { Clock } from '../clock.js';
import { TesseraError } from '../errors.js';

/** Resolves the verification key for a token's protected header (jose's key-function shape). */
export type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<webcrypto.CryptoKey>;

/** Key types a trusted issuer's JWKS may hold: the ones of EdDSA, ES256 and RS256. */
const PUBLIC_KEY_TYPES = new Set(['OKP', 'EC', 'RSA']);
/** Private-key members of OKP, EC and RSA JWKs (RFC 7518 §6): a JWKS with one of them is refused. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'];

/**
 * Checks that `value` is a JWKS of public asymmetric keys only: no symmetric (`oct`) key, which would
 * make HS256 with a published secret possible, and no private key, which the broker must not store.
 */
export function checkJwks(value: unknown, source: string): JSONWebKeySet {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (typeof value !== 'object' || value === null || !Array.isArray(keys) || keys.length === 0) {
    throw new TesseraError('invalid_request', `${source} is not a JWKS: expected {"keys": [...]} with at least one key.`);
  }
  for (const key of keys as unknown[]) {
    const kty = (key as { kty?: unknown } | null)?.kty;
    if (typeof key !== 'object' || key === null || typeof kty !== 'string' || !PUBLIC_KEY_TYPES.has(kty)) {
      throw new TesseraError('invalid_request', `${source}: every key must be a public OKP, EC or RSA JWK (got kty ${JSON.stringify(kty)}).`);
    }
    if (PRIVATE_MEMBERS.some((member) => member in key)) {
      throw new TesseraError('invalid_request', `${source} holds a private key; give the issuer's public keys only.`);
    }
  }
  return value as JSONWebKeySet;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * A JWKS URL must be https: the keys decide whose tokens are accepted, so they must not be
 * fetched over a channel an attacker on the path could rewrite. Loopback http is allowed for
 * tests and for an issuer sidecar on the same host.
 */
export function checkJwksUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TesseraError('invalid_request', `--jwks-url ${JSON.stringify(text)} is not a URL.`);
  }
  if (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) return url.href;
  throw new TesseraError('invalid_request', `The JWKS URL must use https (http only on a loopback address): ${url.href}`);
}

export interface RemoteJwksSettings {
  /** a fetch taking longer is abandoned */
  readonly timeoutMs: number;
  /** a larger response is abandoned while it is read */
  readonly maxBytes: number;
  /** keys older than this are fetched again before use */
  readonly cacheMaxAgeMs: number;
  /** at most one fetch per this interval, however many unknown `kid`s arrive */
  readonly cooldownMs: number;
}

export const DEFAULT_REMOTE_JWKS_SETTINGS: RemoteJwksSettings = { timeoutMs: 5_000, maxBytes: 64 * 1024, cacheMaxAgeMs: 10 * 60_000, cooldownMs: 30_000 };

/**
 * An issuer's JWKS fetched from its URL and cached. An unknown `kid` (the issuer rotated its keys)
 * triggers a refresh, but at most once per cooldown, so a flood of tokens with made-up kids cannot
 * turn the broker into a load generator against the issuer. jose selects the key (by kid, alg and
 * key type); this class only decides when to fetch. Not jose's createRemoteJWKSet: its cache age
 * and cooldown follow the wall clock (the broker's tests and replicas use the injected Clock), and
 * it does not cap the response size.
 */
export class RemoteJwks {
  #keys: KeyResolver | undefined;
  /** when the last fetch was attempted (successful or not): the cooldown counts from it */
  #attemptedAt = Number.NEGATIVE_INFINITY;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #refreshing: Promise<void> | undefined;
  #failure: unknown;

  constructor(
    readonly url: string,
    private readonly clock: Clock,
    private readonly settings: RemoteJwksSettings = DEFAULT_REMOTE_JWKS_SETTINGS,
  ) {}

  readonly resolve: KeyResolver = async (header, token) => {
    if (!this.#keys || this.clock.now() - this.#fetchedAt >= this.settings.cacheMaxAgeMs) await this.refresh();
    try {
      return await this.#keys!(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || this.clock.now() - this.#attemptedAt < this.settings.cooldownMs) throw error;
      await this.refresh();
      return this.#keys!(header, token);
    }
  };

  /**
   * One fetch at a time: concurrent callers wait for the same one. Within the cooldown nothing is
   * fetched: the cached keys serve, or, after a failed fetch, its error does. A failed fetch drops
   * the cached keys: keys the broker could not confirm past their cache age are not trusted.
   */
  private refresh(): Promise<void> {
    if (this.#refreshing) return this.#refreshing;
    if (this.clock.now() - this.#attemptedAt < this.settings.cooldownMs) {
      return this.#keys ? Promise.resolve() : Promise.reject(this.#failure);
    }
    this.#attemptedAt = this.clock.now();
    this.#refreshing = this.fetchKeys()
      .then(
        (jwks) => {
          this.#keys = createLocalJWKSet(jwks);
          this.#fetchedAt = this.clock.now();
        },
        (error: unknown) => {
          this.#keys = undefined;
          this.#failure = error;
          throw error;
        },
      )
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }

  private async fetchKeys(): Promise<JSONWebKeySet> {
    const unavailable = (why: string, cause?: unknown) => new TesseraError('issuer_keys_unavailable', `Fetching the JWKS at ${this.url} failed: ${why}.`, { cause });
    let response: Response;
    try {
      // No redirects: a redirect could lead off https or to another host's keys.
      response = await fetch(this.url, { redirect: 'error', signal: AbortSignal.timeout(this.settings.timeoutMs), headers: { accept: 'application/json' } });
    } catch (error) {
      throw unavailable(error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${this.settings.timeoutMs} ms` : 'connection failed', error);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw unavailable(`HTTP ${response.status}`);
    }
    let text: string;
    try {
      text = await readLimited(response, this.settings.maxBytes);
    } catch (error) {
      throw unavailable(error instanceof TesseraError ? error.message : 'the response broke off', error);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw unavailable('the response is not JSON', error);
    }
    try {
      return checkJwks(json, 'the response');
    } catch (error) {
      throw unavailable((error as Error).message, error);
    }
  }
}

/** The body as text, abandoned as soon as it passes `maxBytes` (Content-Length may be absent or lie). */
async function readLimited(response: Response, maxBytes: number): Promise<string> {
  const tooLarge = () => new TesseraError('issuer_keys_unavailable', `the response is larger than ${maxBytes} bytes`);
  if (Number(response.headers.get('content-length') ?? 0) > maxBytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
