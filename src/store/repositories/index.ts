import { type Kysely, PostgresAdapter } from 'kysely';
import type { Database } from '../schema.js';
import { type AuditRepository, SqlAuditRepository } from './audit.js';
import { type ChangeRepository, SqlChangeRepository } from './changes.js';
import { type IdentityRepository, SqlIdentityRepository } from './identities.js';
import { type ReplayCache, SqlReplayCache } from './replay-cache.js';
import { type ReviewSessionRepository, SqlReviewSessionRepository } from './review-sessions.js';
import { type SessionRepository, SqlSessionRepository } from './sessions.js';
import { type SettingsRepository, SqlSettingsRepository } from './settings.js';
import { SqlTicketRepository, type TicketRepository } from './tickets.js';

export type { AuditRepository, ChangeRepository, IdentityRepository, ReplayCache, ReviewSessionRepository, SessionRepository, SettingsRepository, TicketRepository };

/**
 * Storage, one repository per aggregate. Each speaks domain types; its SQL implementation runs on
 * a `Kysely<Database>`, so the same classes serve the store (Store.repos) and a transaction
 * (Store.transaction). Dialect-specific SQL and SQLite fast paths live inside the implementations.
 */
export interface Repositories {
  readonly identities: IdentityRepository;
  readonly tickets: TicketRepository;
  readonly replayCache: ReplayCache;
  readonly audit: AuditRepository;
  readonly changes: ChangeRepository;
  readonly reviewSessions: ReviewSessionRepository;
  readonly settings: SettingsRepository;
  readonly sessions: SessionRepository;
}

/** Repositories on `db`, built on first use: a transaction's set costs nothing for those it leaves alone. */
class SqlRepositories implements Repositories {
  #identities?: IdentityRepository;
  #tickets?: TicketRepository;
  #replayCache?: ReplayCache;
  #audit?: AuditRepository;
  #changes?: ChangeRepository;
  #reviewSessions?: ReviewSessionRepository;
  #settings?: SettingsRepository;
  #sessions?: SessionRepository;

  constructor(
    private readonly db: Kysely<Database>,
    /** Store.reader for hot-path reads outside a transaction; `db` itself inside one (it must see its own writes). */
    private readonly reader: Kysely<Database>,
  ) {}

  get identities() {
    return (this.#identities ??= new SqlIdentityRepository(this.db, this.reader));
  }
  get tickets() {
    return (this.#tickets ??= new SqlTicketRepository(this.db));
  }
  get replayCache() {
    return (this.#replayCache ??= new SqlReplayCache(this.db));
  }
  get audit() {
    return (this.#audit ??= new SqlAuditRepository(this.db, dialectOf(this.db)));
  }
  get changes() {
    return (this.#changes ??= new SqlChangeRepository(this.db, this.reader));
  }
  get reviewSessions() {
    return (this.#reviewSessions ??= new SqlReviewSessionRepository(this.db));
  }
  get settings() {
    return (this.#settings ??= new SqlSettingsRepository(this.db));
  }
  get sessions() {
    return (this.#sessions ??= new SqlSessionRepository(this.db, this.reader));
  }
}

const cached = new WeakMap<Kysely<Database>, Repositories>();

/**
 * The repositories on `db` (the store's writer, or a transaction). Outside a transaction they are
 * made once per Kysely instance: group commits (replay cache, audit) batch across all callers.
 */
export function repositoriesOn(db: Kysely<Database>, reader: Kysely<Database> = db): Repositories {
  if (db.isTransaction) return new SqlRepositories(db, db);
  let repos = cached.get(db);
  if (!repos) cached.set(db, (repos = new SqlRepositories(db, reader)));
  return repos;
}

export function dialectOf(db: Kysely<Database>): 'sqlite' | 'postgres' {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}
