/** Injected wherever time decides an outcome (ticket expiry, proof freshness), so tests can move it. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
