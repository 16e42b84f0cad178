import { type AutoRenewTimers, systemTimers } from '../auto-renew.js';
import { BrokerRequestError } from '../broker-client.js';
import { TesseraError } from '../errors.js';
import type { Signer } from '../signers/signer.js';
import type { SessionResponse } from '../wire/sessions.js';
import { createSessionCertificate } from './certificate.js';
import { memorySessionSigner } from './memory-signer.js';

/** A registered session: its id (the `kid` of its proofs), its key, and when the broker stops accepting it. */
export interface LiveSession {
  readonly id: string;
  readonly signer: Signer;
  /** epoch ms */
  readonly expiresAt: number;
}

export interface SessionKeysOptions {
  /** Seconds from iat to exp. */
  readonly lifetimeSeconds: number;
  readonly timers?: AutoRenewTimers;
  /** Every failed renewal (the current session stays in use while it lives). */
  readonly onError?: (error: Error) => void;
}

/** Sends the certificate to `POST /v1/sessions` in a request proven by the primary key. */
export type RegisterSession = (certificate: string) => Promise<SessionResponse>;

/** Renew this much before the end of each lifetime at the latest: two thirds in, minus jitter. */
const RENEW_AT = 2 / 3;
/** Up to this fraction of the lifetime earlier, at random: a fleet started together spreads its KMS calls. */
const JITTER = 1 / 10;
/** A session this close to its end is not used for a new request (the request may take that long to arrive). */
const EXPIRY_MARGIN_MS = 5_000;
const MIN_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 60_000;

/**
 * The generation of the next certificate: strictly increasing within this process, and seeded from
 * the wall clock in milliseconds, so an agent restarted later (with nothing persisted) still starts
 * above every generation it used before — as long as the host's clock does not step back further
 * than the restart took. The broker takes a lower generation than it has seen as a cloned agent.
 */
let lastGeneration = 0;
export function nextGeneration(nowMs: number): number {
  lastGeneration = Math.max(Math.floor(nowMs), lastGeneration + 1);
  return lastGeneration;
}

/** KMS (through the AWS SDK) answers an exhausted Sign quota with ThrottlingException; our signer wraps it as the cause. */
export function isThrottling(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) if (e.name === 'ThrottlingException') return true;
  return false;
}

/** Worth retrying later: throttling, the broker or its key store failing, not the request itself. */
function isTransient(error: unknown): boolean {
  if (isThrottling(error)) return true;
  const status = error instanceof BrokerRequestError || error instanceof TesseraError ? error.status : 500;
  return status === 0 || status === 429 || status >= 500;
}

/**
 * An agent's session keys (docs/PROTOCOL.md §3.1): the primary key (KMS/HSM) signs one certificate
 * per session, the in-memory session key signs every request. Renews at two thirds of the lifetime
 * with jitter; when renewing fails for a transient reason (KMS throttling above all) it keeps using
 * the current session until it expires and retries with jittered exponential backoff. With no live
 * session, the next request registers one itself.
 */
export class SessionKeys {
  #current: LiveSession | undefined;
  #registering: Promise<LiveSession> | undefined;
  #timer: unknown;
  #failures = 0;
  #closed = false;
  readonly #timers: AutoRenewTimers;

  constructor(
    private readonly primary: Signer,
    private readonly identityId: string,
    private readonly register: RegisterSession,
    private readonly options: SessionKeysOptions,
  ) {
    this.#timers = options.timers ?? systemTimers;
  }

  /** The session to sign the next request with: the current one while it lives, else a new one. */
  async current(): Promise<LiveSession> {
    const session = this.#current;
    if (session && this.#timers.now() < session.expiresAt - EXPIRY_MARGIN_MS) return session;
    return this.#renew();
  }

  /** The broker refused `session` (expired, ended, unknown): the next request registers a new one. */
  discard(session: LiveSession): void {
    if (this.#current === session) this.#current = undefined;
  }

  close(): void {
    this.#closed = true;
    this.#clearTimer();
    this.#current = undefined;
  }

  /** One registration at a time: concurrent requests wait for the same one. */
  #renew(): Promise<LiveSession> {
    this.#registering ??= this.#registerNew().finally(() => (this.#registering = undefined));
    return this.#registering;
  }

  async #registerNew(): Promise<LiveSession> {
    const key = memorySessionSigner();
    const now = this.#timers.now();
    const iat = Math.floor(now / 1000);
    const certificate = await createSessionCertificate(this.primary, this.identityId, key.publicKey, {
      iat,
      exp: iat + this.options.lifetimeSeconds,
      gen: nextGeneration(now),
    });
    const registered = await this.register(certificate);
    const session: LiveSession = { id: registered.session_id, signer: key, expiresAt: Date.parse(registered.expires_at) };
    if (this.#closed) return session;
    this.#current = session;
    this.#failures = 0;
    const lifetimeMs = this.options.lifetimeSeconds * 1000;
    this.#schedule(now + lifetimeMs * (RENEW_AT - JITTER * Math.random()) - this.#timers.now());
    return session;
  }

  #schedule(delayMs: number): void {
    this.#clearTimer();
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      this.#renew().catch((error: unknown) => this.#retryLater(error as Error));
    }, Math.max(0, delayMs));
  }

  /** Keeps the current session while it lives and tries again later; gives up on a permanent refusal. */
  #retryLater(error: Error): void {
    this.options.onError?.(error);
    if (this.#closed) return;
    if (!isTransient(error)) {
      // E.g. the identity was revoked or suspended: its sessions are ended too.
      this.#current = undefined;
      return;
    }
    this.#failures++;
    const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (this.#failures - 1));
    const delay = backoff / 2 + (backoff / 2) * Math.random();
    const session = this.#current;
    // Past its expiry the session is useless anyway: the next request registers (and reports why it cannot).
    if (session && this.#timers.now() + delay < session.expiresAt) this.#schedule(delay);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
