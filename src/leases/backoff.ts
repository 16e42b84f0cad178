/** Revocation retry schedule: exponential from 1 s, capped at 5 min, jittered so retries spread out. */
export const RETRY_BASE_MS = 1_000;
export const RETRY_CAP_MS = 5 * 60_000;

/**
 * Delay before attempt `attempts + 1`. Permanent failures go straight to the cap: retrying them is
 * cheap insurance (someone may fix the upstream) and keeps them visible, but must not hammer it.
 * Equal jitter: half the delay is fixed, so a retry never comes sooner than half the schedule.
 */
export function retryDelayMs(attempts: number, retryable: boolean, random: () => number = Math.random): number {
  const exponential = retryable ? RETRY_BASE_MS * 2 ** Math.max(0, attempts - 1) : RETRY_CAP_MS;
  const delay = Math.min(RETRY_CAP_MS, exponential);
  return Math.round(delay / 2 + (random() * delay) / 2);
}
