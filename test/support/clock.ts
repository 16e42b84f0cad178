import type { Clock, Scheduler } from '../../src/clock.js';

/** Real time plus an offset the test can move: expiry and freshness without sleeping. */
export class TestClock implements Clock {
  offsetMs = 0;
  private pinnedAt: number | null = null;
  now(): number {
    return (this.pinnedAt ?? Date.now()) + this.offsetMs;
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
  /** Stops the clock at `epochMs` (advance() still moves it), for tests about exact instants. */
  pin(epochMs: number): void {
    this.pinnedAt = epochMs;
    this.offsetMs = 0;
  }
  /** Back to real time, without offset. */
  release(): void {
    this.pinnedAt = null;
    this.offsetMs = 0;
  }
  /** Stops time at the current instant (offset kept) until release(): for asserts on exact boundaries. */
  freeze(): void {
    this.pinnedAt ??= Date.now();
  }
}

/**
 * A scheduler whose tasks run only when the test says so: background work (reaper sweeps, audit
 * checkpoint polls, replay-cache pruning) never races a test's assertions.
 */
export class ManualScheduler implements Scheduler {
  readonly #tasks = new Set<{ readonly ms: number; readonly task: () => unknown }>();

  every(ms: number, task: () => unknown): () => void {
    const entry = { ms, task };
    this.#tasks.add(entry);
    return () => this.#tasks.delete(entry);
  }

  /** Intervals registered (and not cancelled), to check what the broker scheduled. */
  intervals(): number[] {
    return [...this.#tasks].map((entry) => entry.ms);
  }

  /** Runs every scheduled task once, as if each interval had passed, and waits for their work. */
  async tick(): Promise<void> {
    await Promise.all([...this.#tasks].map(async (entry) => entry.task()));
  }
}
