import { normalizeIP } from '@fastify/rate-limit';
import type { Clock } from '../clock.js';

export interface FailureLimitSettings {
  /** failures allowed per key and window; the next attempt is refused until the window ends */
  readonly max: number;
  readonly windowMs: number;
}

/** Keys tracked per window: past it, new keys go uncounted rather than memory growing with a spray of addresses. */
const MAX_KEYS = 100_000;

/**
 * Failures per key (a client address, an identity) in fixed windows aligned to the clock: a key
 * that failed `max` times is refused until its window ends. One map, cleared when the window
 * turns, so memory is bounded and nothing runs in the background. Shared by the API
 * (http/plugins/failure-limit.ts), the credential proxy and ticket redemption.
 */
export class FailureLimit {
  #window = Number.NaN;
  #failures = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    readonly settings: FailureLimitSettings,
  ) {}

  /** Failures counted for `key` in the current window. */
  count(key: string): number {
    this.#turn();
    return this.#failures.get(key) ?? 0;
  }

  /** Counts one failure for `key`; returns the count so far in this window. */
  fail(key: string): number {
    this.#turn();
    const count = (this.#failures.get(key) ?? 0) + 1;
    if (count > 1 || this.#failures.size < MAX_KEYS) this.#failures.set(key, count);
    return count;
  }

  /** Seconds until `key` may try again, or undefined if it may now. */
  retryAfterSeconds(key: string): number | undefined {
    return this.count(key) >= this.settings.max ? Math.ceil(this.msLeft() / 1000) : undefined;
  }

  /** Milliseconds until the current window ends. */
  msLeft(): number {
    return this.settings.windowMs - (this.clock.now() % this.settings.windowMs);
  }

  #turn(): void {
    const window = Math.floor(this.clock.now() / this.settings.windowMs);
    if (window === this.#window) return;
    this.#window = window;
    this.#failures.clear();
  }
}

/** The key a client address is limited by: @fastify/rate-limit's normal form, an IPv6 address by its /64. */
export function addressKey(ip: string): string {
  return normalizeIP(ip);
}
