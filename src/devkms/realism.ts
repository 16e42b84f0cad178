/**
 * Optional realism for the dev KMS, so tests and the bench see what AWS KMS does to a fleet of
 * agents: every Sign is a network call of tens of milliseconds, and all ECC Sign/Verify calls of an
 * account and region share one request quota (300/s in AWS's published defaults), past which KMS
 * answers ThrottlingException. Both are off unless asked for.
 */
import type { Clock, Timers } from '../clock.js';

/** The operations AWS counts against the "Cryptographic operations (ECC) request rate" quota and that run in its HSMs. */
export const ASYMMETRIC_OPERATIONS: ReadonlySet<string> = new Set(['Sign', 'Verify']);

export interface RequestQuota {
  readonly ratePerSecond: number;
  /** Requests allowed at once after an idle spell; default one second's worth (`ratePerSecond`). */
  readonly burst?: number;
}

/**
 * A token bucket: `burst` tokens, refilled continuously at `ratePerSecond` on the injected clock;
 * each request takes one or is refused. Shared by every caller, like an account-wide KMS quota.
 */
export class TokenBucket {
  readonly ratePerSecond: number;
  readonly burst: number;
  #tokens: number;
  #last: number;

  constructor(
    quota: RequestQuota,
    private readonly clock: Clock,
  ) {
    if (!(quota.ratePerSecond > 0) || !Number.isFinite(quota.ratePerSecond)) throw new Error('a quota rate must be a positive number of requests per second');
    const burst = quota.burst ?? quota.ratePerSecond;
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new Error('a quota burst must be at least 1 request');
    this.ratePerSecond = quota.ratePerSecond;
    this.burst = burst;
    this.#tokens = burst;
    this.#last = clock.now();
  }

  take(): boolean {
    const now = this.clock.now();
    // max(0, ...): a clock that steps back (NTP) must not drain the bucket.
    this.#tokens = Math.min(this.burst, this.#tokens + (Math.max(0, now - this.#last) / 1000) * this.ratePerSecond);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Resolves after `ms` on the injected timers (at once for 0). */
export function delay(timers: Timers, ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => timers.setTimeout(resolve, ms));
}
