import { type Clock, type Scheduler, systemScheduler } from '../clock.js';
import { reconcilePendingLeases } from './reconcile.js';
import { type LeaseRevoker, SYSTEM_REASONS } from './revoker.js';

export interface ReaperOptions {
  readonly intervalMs: number;
  /** Pending leases older than this are orphans of a failed issue (see reconcile.ts). */
  readonly pendingGraceMs: number;
}

export interface SweepCounts {
  readonly expired: number;
  readonly retried: number;
  readonly reconciled: number;
  /** Revocations that failed this sweep and are scheduled for retry. */
  readonly failed: number;
}

/**
 * Revokes expired leases, retries failed revocations and reconciles orphaned intents, on a timer.
 * Work comes from indexed queries in bounded batches (the revoker yields between them), so a
 * thousand leases expiring together neither block the event loop nor flood the upstream.
 */
export class LeaseReaper {
  private cancel: (() => void) | undefined;
  private running: Promise<SweepCounts> | undefined;
  private stopping = false;

  constructor(
    private readonly revoker: LeaseRevoker,
    private readonly clock: Clock,
    private readonly options: ReaperOptions,
  ) {}

  start(onError: (error: unknown) => void, scheduler: Scheduler = systemScheduler): void {
    this.cancel = scheduler.every(this.options.intervalMs, () => (this.running ? undefined : this.sweep().catch(onError)));
  }

  /** One full pass; concurrent calls share the pass in progress. */
  sweep(): Promise<SweepCounts> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.cancel?.();
    await this.running?.catch(() => undefined);
  }

  private async pass(): Promise<SweepCounts> {
    const stop = () => this.stopping;
    const expired = await this.revoker.drain({ kind: 'expired' }, { actor: null, reason: SYSTEM_REASONS.expired }, stop);
    const retried = await this.revoker.drain({ kind: 'retry' }, undefined, stop);
    const reconciled = await reconcilePendingLeases(this.revoker, this.clock.now() - this.options.pendingGraceMs);
    return {
      expired: expired.revoked,
      retried: retried.revoked,
      reconciled: reconciled.revoked,
      failed: expired.pending + retried.pending + reconciled.pending,
    };
  }
}
