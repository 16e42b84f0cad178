import { type Clock, type Scheduler, systemScheduler } from '../clock.js';
import { signCompactJws } from '@tessera-broker/sdk';
import type { Signer } from '../keys/key-store.js';
import type { AuditRepository } from '../store/repositories/audit.js';
import type { Repositories } from '../store/repositories/index.js';

export const CHECKPOINT_TYPE = 'tessera-audit-checkpoint+jwt';

/** What a checkpoint JWS signs, and the audit_checkpoints row minus the JWS. */
export interface CheckpointPayload {
  readonly seq: number;
  readonly hash: string;
  /** epoch ms when it was signed */
  readonly at: number;
}

export interface StoredCheckpoint extends CheckpointPayload {
  readonly jws: string;
}

export interface CheckpointPolicy {
  /** sign once this many events were appended since the last checkpoint */
  readonly everyEvents: number;
  /** or once this long has passed since it, if anything was appended */
  readonly intervalMs: number;
}

/** The key checkpoints are signed with: the authority's current one (src/identity/authority.ts), which rotates. */
export interface CheckpointKey {
  current(): Promise<{ readonly signer: Signer; readonly kid: string }>;
}

/** A key that never rotates (tests, tools). */
export const fixedCheckpointKey = (signer: Signer, kid: string): CheckpointKey => ({ current: async () => ({ signer, kid }) });

/** How often the broker looks at the chain head: often enough for everyEvents to be near exact. */
const POLL_MS = 1000;

/**
 * Signs the chain head with the authority key (in KMS/HSM) so that a rewritten or truncated log
 * no longer matches: the hash chain alone can be recomputed by anyone with write access.
 */
export class AuditCheckpointer {
  private running: Promise<unknown> | undefined;

  constructor(
    audit: AuditRepository,
    private readonly key: CheckpointKey,
    private readonly clock: Clock,
    private readonly policy: CheckpointPolicy,
    /**
     * Runs a checkpointing pass unless another broker on the database is in one (then undefined),
     * so replicas sign each due head once (src/store/exclusive.ts), on the repositories it gives
     * (the lock's own connection). Alone: run it on `audit`.
     */
    private readonly exclusive: <T>(work: (repos: Pick<Repositories, 'audit'>) => Promise<T>) => Promise<T | undefined> = (work) => work({ audit }),
  ) {}

  /** Signs the head if the policy says so; undefined when nothing was due (or another broker is signing). */
  checkpointIfDue(): Promise<StoredCheckpoint | undefined> {
    return this.exclusive(async ({ audit }) => {
      const [head, last] = await Promise.all([audit.head(), audit.lastCheckpoint()]);
      const pending = head.seq - (last?.seq ?? 0);
      const due = pending >= this.policy.everyEvents || (pending > 0 && this.clock.now() - (last?.at ?? 0) >= this.policy.intervalMs);
      return due ? this.sign(audit, head) : undefined;
    });
  }

  /** Signs the current head now, unless it is empty or already signed (or another broker is signing). */
  checkpoint(): Promise<StoredCheckpoint | undefined> {
    return this.exclusive(async ({ audit }) => {
      const [head, last] = await Promise.all([audit.head(), audit.lastCheckpoint()]);
      return head.seq > (last?.seq ?? 0) ? this.sign(audit, head) : undefined;
    });
  }

  /**
   * Polls until the returned stop() is called, which signs the head one last time so that a
   * clean shutdown leaves no unsigned tail. Errors go to `onError` (the next poll retries).
   */
  start(onError: (error: unknown) => void, scheduler: Scheduler = systemScheduler): () => Promise<void> {
    const cancel = scheduler.every(Math.min(POLL_MS, this.policy.intervalMs), () => {
      this.running ??= this.checkpointIfDue()
        .catch(onError)
        .finally(() => (this.running = undefined));
      return this.running;
    });
    return async () => {
      cancel();
      await this.running;
      await this.checkpoint().catch(onError);
    };
  }

  private async sign(audit: AuditRepository, head: { seq: number; hash: string }): Promise<StoredCheckpoint> {
    const payload: CheckpointPayload = { seq: head.seq, hash: head.hash, at: this.clock.now() };
    const { signer, kid } = await this.key.current();
    const jws = await signCompactJws(signer, { alg: 'EdDSA', typ: CHECKPOINT_TYPE, kid }, { ...payload });
    const checkpoint = { ...payload, jws };
    // Several brokers on one database may sign the same head; the first one stored stands.
    await audit.insertCheckpoint(checkpoint);
    return checkpoint;
  }
}
