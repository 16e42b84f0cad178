import pg from 'pg';
import type { Clock, Scheduler } from '../clock.js';
import { TesseraError } from '../errors.js';
import type { ChangeRepository } from '../store/repositories/changes.js';
import { type FeedStatus, SubscribedFeed } from './change-feed.js';

export interface PostgresFeedSettings {
  /** TESSERA_REPLICA_MAX_STALENESS: past this without a confirmed read, authenticated requests are refused */
  readonly maxStalenessMs: number;
  /** how often the feed is read when no NOTIFY arrives (NOTIFY is a wake-up, not a guarantee) */
  readonly pollMs: number;
}

export interface FeedLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** The channel migration 0006's trigger notifies on commit. */
const CHANNEL = 'tessera_changes';

/**
 * The feed on a shared PostgreSQL store. Each read takes, in one statement, the rows committed
 * since the previous read's snapshot and the statement's own snapshot (ChangeRepository
 * .changesSinceSnapshot): a row is delivered when its transaction is visible now and was not then.
 *
 * Reads run on every NOTIFY (a dedicated connection, outside the pool), on a timer, and on demand;
 * concurrent demands share one read. A read that succeeds confirms the replica current as of the
 * instant it started; after a gap longer than the staleness bound every cache is cleared.
 */
export class PostgresChangeFeed extends SubscribedFeed {
  #snapshot: string | undefined;
  #confirmedAt: number | undefined;
  #reading: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  #listener: pg.Client | undefined;
  #connecting: Promise<void> | undefined;
  #stopPolling: () => void = () => undefined;
  #closed = false;
  /** a failed read was reported; the next success says so once */
  #failing = false;

  private constructor(
    private readonly url: string,
    private readonly changes: ChangeRepository,
    private readonly clock: Clock,
    private readonly settings: PostgresFeedSettings,
    private readonly log: FeedLog | undefined,
  ) {
    super();
  }

  /** Listens, takes the starting snapshot (nothing is cached yet, so nothing earlier matters) and polls. */
  static async open(url: string, changes: ChangeRepository, clock: Clock, scheduler: Scheduler, settings: PostgresFeedSettings, log?: FeedLog): Promise<PostgresChangeFeed> {
    const feed = new PostgresChangeFeed(url, changes, clock, settings, log);
    await feed.#listen();
    await feed.read();
    feed.#stopPolling = scheduler.every(settings.pollMs, () => {
      void feed.#listen();
      return feed.read().catch(() => undefined);
    });
    return feed;
  }

  sync(): boolean {
    return this.#isCurrent();
  }

  async ensureCurrent(): Promise<void> {
    if (this.#isCurrent()) return;
    await this.#readWithinBound();
    if (!this.#isCurrent()) {
      const { lagMs } = this.status();
      throw new TesseraError('replica_stale', `This replica has not confirmed it is current ${lagMs === null ? 'yet' : `for ${lagMs} ms`} (the limit is ${this.settings.maxStalenessMs} ms); try another replica.`);
    }
  }

  catchUp(): Promise<void> {
    return this.#readWithinBound();
  }

  /** A read, waited for at most the staleness bound (a partitioned database must not hang requests); never rejects. */
  async #readWithinBound(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.settings.maxStalenessMs).unref()));
    await Promise.race([this.read().catch(() => undefined), timeout]);
    clearTimeout(timer);
  }

  status(): FeedStatus {
    return { current: this.#isCurrent(), lagMs: this.#confirmedAt === undefined ? null : this.clock.now() - this.#confirmedAt };
  }

  /** Reads the feed; a call while a read runs gets the next read, which starts after it. */
  read(): Promise<void> {
    if (!this.#reading) {
      this.#reading = this.#readOnce().finally(() => (this.#reading = undefined));
      return this.#reading;
    }
    this.#queued ??= this.#reading
      .catch(() => undefined)
      .then(() => {
        this.#queued = undefined;
        return this.read();
      });
    return this.#queued;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopPolling();
    await Promise.allSettled([this.#reading, this.#queued, this.#connecting]);
    await this.#listener?.end().catch(() => undefined);
  }

  #isCurrent(): boolean {
    return this.#confirmedAt !== undefined && this.clock.now() - this.#confirmedAt <= this.settings.maxStalenessMs;
  }

  async #readOnce(): Promise<void> {
    const startedAt = this.clock.now();
    const hadGap = this.#confirmedAt !== undefined && !this.#isCurrent();
    try {
      const since = this.#snapshot;
      if (since === undefined) {
        this.#snapshot = await this.#read((connection) => this.changes.currentSnapshot(connection));
      } else {
        const { snapshot, changes } = await this.#read((connection) => this.changes.changesSinceSnapshot(since, connection));
        this.#snapshot = snapshot;
        for (const change of changes) this.deliver(change.kind, change.key);
      }
    } catch (error) {
      if (!this.#failing) this.log?.warn({ err: error }, 'reading the change feed failed; retrying');
      this.#failing = true;
      throw error;
    }
    // Caches were bypassed while stale, but rows older than the retention may be gone: start over.
    if (hadGap) this.deliverGap();
    if (this.#failing) this.log?.warn({}, 'reading the change feed works again');
    this.#failing = false;
    this.#confirmedAt = startedAt;
  }

  /**
   * On the NOTIFY connection while it is up (it is idle otherwise), so that a busy pool cannot hold
   * up the reads that keep this replica current; on the pool while it is down.
   */
  async #read<R>(read: (connection?: pg.Client) => Promise<R>): Promise<R> {
    const listener = this.#listener;
    if (!listener) return read();
    try {
      return await read(listener);
    } catch (error) {
      // A query that timed out may still be running: start afresh on the next poll.
      this.#drop(listener);
      throw error;
    }
  }

  #drop(client: pg.Client): void {
    if (this.#listener === client) this.#listener = undefined;
    void client.end().catch(() => undefined);
  }

  /** (Re)connects the NOTIFY connection if it is down; a failure leaves the feed on polling. */
  #listen(): Promise<void> {
    if (this.#listener || this.#closed) return Promise.resolve();
    this.#connecting ??= (async () => {
      // A read that hangs (a partition) must not keep the replica stale past the bound.
      const client = new pg.Client({ connectionString: this.url, query_timeout: this.settings.maxStalenessMs });
      const drop = () => this.#drop(client);
      client.on('error', drop);
      client.on('end', drop);
      client.on('notification', () => void this.read().catch(() => undefined));
      try {
        await client.connect();
        await client.query(`LISTEN ${CHANNEL}`);
        if (this.#closed) return drop();
        this.#listener = client;
      } catch (error) {
        drop();
        this.log?.warn({ err: error }, 'listening for change notifications failed; polling meanwhile');
      }
    })().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }
}
