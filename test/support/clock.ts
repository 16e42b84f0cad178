import type { Clock } from '../../src/clock.js';

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
}
