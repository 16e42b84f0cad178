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

/**
 * Timers for the SDK's autoRenew that fire only when the test says so: a renewal never lands late
 * on a busy machine, and the test sees each delay autoRenew asked for.
 */
export class ManualTimers {
  readonly #pending = new Map<number, { readonly callback: () => void; readonly ms: number }>();
  #next = 0;
  /** Every delay requested, in order. */
  readonly delays: number[] = [];

  constructor(private readonly clock: Clock = { now: () => Date.now() }) {}

  now = (): number => this.clock.now();

  setTimeout = (callback: () => void, ms: number): unknown => {
    const id = ++this.#next;
    this.#pending.set(id, { callback, ms });
    this.delays.push(ms);
    return id;
  };

  clearTimeout = (handle: unknown): void => {
    this.#pending.delete(handle as number);
  };

  /** Timers armed and neither fired nor cleared. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Fires the one armed timer now (autoRenew arms at most one); fails if none or several are armed. */
  fire(): void {
    if (this.#pending.size !== 1) throw new Error(`expected exactly one armed timer, found ${this.#pending.size}`);
    const [id, { callback }] = [...this.#pending][0]!;
    this.#pending.delete(id);
    callback();
  }
}
