import type { Clock, Scheduler } from '../clock.js';
import type { Store } from '../store/database.js';
import type { ChangeFeed } from './change-feed.js';
import { LocalChangeFeed } from './local-change-feed.js';
import { type FeedLog, PostgresChangeFeed } from './postgres-change-feed.js';

export interface ChangeFeedSettings {
  /** TESSERA_REPLICA_MAX_STALENESS */
  readonly maxStalenessMs: number;
}

/** Polls often enough that a replica whose NOTIFYs are lost still confirms well within the bound. */
const POLLS_PER_STALENESS_BOUND = 4;

/** The feed for `store`: local on SQLite (one process), LISTEN/NOTIFY plus polling on PostgreSQL. */
export function openChangeFeed(store: Store, url: string, clock: Clock, scheduler: Scheduler, settings: ChangeFeedSettings, log?: FeedLog): Promise<ChangeFeed> {
  if (store.dialect === 'sqlite') return LocalChangeFeed.open(store.repos.changes);
  return PostgresChangeFeed.open(url, store.db, clock, scheduler, { maxStalenessMs: settings.maxStalenessMs, pollMs: settings.maxStalenessMs / POLLS_PER_STALENESS_BOUND }, log);
}
