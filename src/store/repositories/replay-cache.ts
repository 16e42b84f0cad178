import type { Kysely } from 'kysely';
import { precompiled } from '../precompiled.js';
import type { Database } from '../schema.js';
import { sqliteIfIdle } from '../sync-sqlite.js';

/** The proof replay cache: every jti any broker on the database accepted, until its proof expires. */
export interface ReplayCache {
  /**
   * Records `key` (identity + jti) until `expiresAt`; false if it was recorded already (a replay).
   * Of concurrent calls with one key, on one broker or several, exactly one gets true.
   */
  remember(key: string, identityId: string, expiresAt: number): Promise<boolean>;
  /** Forgets keys whose `expiresAt` is at or before `now`. */
  prune(now: number): Promise<void>;
}

const insertJti = precompiled(
  (db, jti: string, identityId: string, expiresAt: number) =>
    db.insertInto('proof_replays').values({ jti, identity_id: identityId, expires_at: expiresAt }).onConflict((conflict) => conflict.column('jti').doNothing()),
  ['jti', 'identity', 1],
);

interface PendingJti {
  readonly parameters: [key: string, identityId: string, expiresAt: number];
  resolve(fresh: boolean): void;
  reject(error: unknown): void;
}

/**
 * The unique jti column decides (INSERT ... ON CONFLICT DO NOTHING: a row inserted means fresh).
 * SQLite: the jtis arriving within one turn of the event loop go into one transaction, committed
 * before any of their callers proceeds, instead of one commit each; a replay within a batch is
 * still caught, since each insert says whether its row went in.
 */
export class SqlReplayCache implements ReplayCache {
  #pending: PendingJti[] = [];

  constructor(private readonly db: Kysely<Database>) {}

  async remember(key: string, identityId: string, expiresAt: number): Promise<boolean> {
    const parameters: PendingJti['parameters'] = [key, identityId, expiresAt];
    if (sqliteIfIdle(this.db)) return this.#groupCommit(parameters);
    return (await insertJti(this.db, parameters)).numAffectedRows !== 0n;
  }

  async prune(now: number): Promise<void> {
    await this.db.deleteFrom('proof_replays').where('expires_at', '<=', now).execute();
  }

  #groupCommit(parameters: PendingJti['parameters']): Promise<boolean> {
    return new Promise((resolve, reject) => {
      if (this.#pending.length === 0) setImmediate(() => this.#flush());
      this.#pending.push({ parameters, resolve, reject });
    });
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    const sqlite = sqliteIfIdle(this.db);
    if (!sqlite) {
      // A transaction is open on the writer across an await: queue on kysely's connection like any write.
      for (const pending of batch) insertJti(this.db, pending.parameters).then((result) => pending.resolve(result.numAffectedRows !== 0n), pending.reject);
      return;
    }
    let fresh: boolean[];
    try {
      const statement = sqlite.prepare(insertJti.sql(this.db));
      fresh = sqlite.transaction(() => batch.map((pending) => statement.run(pending.parameters).changes !== 0));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, i) => pending.resolve(fresh[i]!));
  }
}
