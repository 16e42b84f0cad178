import type { Clock } from '../../src/clock.js';

/** Real time plus an offset the test can move: expiry and freshness without sleeping. */
export class TestClock implements Clock {
  offsetMs = 0;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}
