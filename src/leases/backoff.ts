/** Revocation retry schedule: exponential from 1 s, capped at 1 min, jittered so retries spread out. */
export const RETRY_BASE_MS = 1_000;
export const RETRY_CAP_MS = 60_000;

/**
 * Delay before attempt `attempts + 1`. Permanent failures follow the same schedule: they are
 * usually a missing privilege or a dropped object someone is about to fix, and a minute is cheap
 * for the upstream. Equal jitter: half the delay is fixed, so a retry never comes sooner than half
 * the schedule. Retries never stop; a lease stays revocation-pending, visible, until one succeeds.
 */
export function retryDelayMs(attempts: number, random: () => number = Math.random): number {
  const delay = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.max(0, attempts - 1));
  return Math.round(delay / 2 + (random() * delay) / 2);
}
