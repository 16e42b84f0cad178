/** Injected wherever time decides an outcome (ticket expiry, proof freshness), so tests can move it. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * Runs the broker's background work (reaper sweeps, audit checkpoint polls, replay-cache pruning)
 * on an interval. Injected so that tests decide when background work runs instead of racing it.
 */
export interface Scheduler {
  /** Runs `task` every `ms` until the returned function is called; a returned promise is the run's work. */
  every(ms: number, task: () => unknown): () => void;
}

/** Real timers that do not keep the process alive. */
export const systemScheduler: Scheduler = {
  every(ms, task) {
    const timer = setInterval(task, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

/**
 * Time plus one-shot timers, for work that waits a set delay (the dev KMS's simulated latency).
 * The same shape as the SDK's AutoRenewTimers, so test/support/clock.ts ManualTimers serves both.
 */
export interface Timers extends Clock {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
