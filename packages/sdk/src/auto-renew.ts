import { BrokerRequestError } from './broker-client.js';
import { TesseraError } from './errors.js';
import type { Lease, Renewal } from './lease.js';
import { type Ttl, ttlSeconds } from './ttl.js';

export interface AutoRenewOptions {
  /**
   * When to renew: a fraction (0 < x < 1) of the lease's TTL still left, or a number of seconds
   * (>= 1) before expiry. Default 1/3: renew two thirds into each TTL.
   */
  readonly renewBefore?: number;
  /** TTL to ask for on each renewal; default: the lease's original TTL. */
  readonly ttl?: Ttl;
  readonly onRenew?: (renewal: Renewal) => void;
  /** Every failed renewal. Transient ones (broker unreachable, 5xx) are retried while the lease lasts. */
  readonly onError?: (error: Error) => void;
  /** Once, when renewing ends; the same value `done` resolves to. */
  readonly onStop?: (end: AutoRenewEnd) => void;
  /** Time and timers (default: Date.now and unref'd setTimeout); tests pass their own to decide when a renewal runs. */
  readonly timers?: AutoRenewTimers;
}

export interface AutoRenewTimers {
  /** Epoch milliseconds. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers that do not keep the process alive. */
export const systemTimers: AutoRenewTimers = {
  now: () => Date.now(),
  setTimeout(callback, ms) {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export type AutoRenewEnd =
  /** stop() (or the client's close()) was called. */
  | { readonly reason: 'stopped' }
  /** The broker will not extend the lease further (max TTL reached): get a new lease before `expiresAt`. */
  | { readonly reason: 'not_renewable'; readonly expiresAt: Date }
  /** The lease is gone (revoked, expired, identity revoked) or renewing kept failing until expiry. */
  | { readonly reason: 'failed'; readonly error: Error };

export interface AutoRenewer {
  /** Cancels the next renewal and waits for one in flight; resolves once nothing is left running. */
  stop(): Promise<void>;
  readonly done: Promise<AutoRenewEnd>;
}

export type RenewFn = (leaseId: string, ttlSeconds: number) => Promise<Renewal>;

const DEFAULT_RENEW_BEFORE = 1 / 3;
const MAX_RETRY_DELAY_MS = 5_000;

/** Worth retrying: the broker (or its key store / upstream) failed, not the request. */
function isTransient(error: unknown): boolean {
  const status = error instanceof BrokerRequestError || error instanceof TesseraError ? error.status : 500;
  return status === 0 || status === 429 || status >= 500;
}

function renewBeforeMs(renewBefore: number, ttlMs: number): number {
  const before = renewBefore < 1 ? renewBefore * ttlMs : renewBefore * 1000;
  // Renewing at or before the start of each TTL would renew back to back.
  if (!(before > 0 && before < ttlMs)) {
    throw new TesseraError('invalid_request', `renewBefore must be a fraction in (0, 1) or seconds below the TTL (${ttlMs / 1000} s); got ${renewBefore}.`);
  }
  return before;
}

/**
 * Renews `lease` ahead of each expiry until it cannot be renewed any more, it fails for good, or
 * stop() is called. Times come from the broker; clocks are assumed in sync within the ±60 s proofs
 * need anyway. The timer is unref'd: renewing alone does not keep the process alive.
 */
export function autoRenew(renew: RenewFn, lease: Lease, options: AutoRenewOptions = {}): AutoRenewer {
  const ttl = options.ttl === undefined ? Math.max(1, Math.round((lease.expiresAt.getTime() - lease.issuedAt.getTime()) / 1000)) : ttlSeconds(options.ttl);
  const beforeMs = renewBeforeMs(options.renewBefore ?? DEFAULT_RENEW_BEFORE, ttl * 1000);
  const timers = options.timers ?? systemTimers;
  let expiresAt = lease.expiresAt.getTime();
  let timer: unknown;
  let inFlight: Promise<void> | undefined;
  let stopping = false;
  let finish!: (end: AutoRenewEnd) => void;
  const done = new Promise<AutoRenewEnd>((resolve) => (finish = resolve));
  let ended = false;

  const end = (result: AutoRenewEnd) => {
    if (ended) return;
    ended = true;
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
    finish(result);
    options.onStop?.(result);
  };

  const schedule = (delayMs: number) => {
    timer = timers.setTimeout(() => {
      timer = undefined;
      inFlight = attempt()
        .catch((error: unknown) => end({ reason: 'failed', error: error as Error })) // a throwing callback
        .finally(() => (inFlight = undefined));
    }, Math.max(0, delayMs));
  };

  const attempt = async () => {
    let renewal: Renewal;
    try {
      renewal = await renew(lease.id, ttl);
    } catch (error) {
      options.onError?.(error as Error);
      const left = expiresAt - timers.now();
      if (!isTransient(error) || left <= 0) return end({ reason: 'failed', error: error as Error });
      if (!stopping) schedule(Math.min(MAX_RETRY_DELAY_MS, left / 2));
      return;
    }
    // A capped renewal that no longer moves the expiry means the max TTL is reached.
    const extended = renewal.expiresAt.getTime() > expiresAt;
    expiresAt = renewal.expiresAt.getTime();
    options.onRenew?.(renewal);
    if (!renewal.renewable || !extended) return end({ reason: 'not_renewable', expiresAt: renewal.expiresAt });
    if (!stopping) schedule(expiresAt - timers.now() - beforeMs);
  };

  if (lease.renewable) schedule(expiresAt - timers.now() - beforeMs);
  else end({ reason: 'not_renewable', expiresAt: lease.expiresAt });

  return {
    done,
    async stop() {
      stopping = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      timer = undefined;
      await inFlight;
      end({ reason: 'stopped' });
    },
  };
}
