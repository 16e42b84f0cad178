import { type Kysely, PostgresAdapter } from 'kysely';
import type { Database } from '../schema.js';
import { type AuditRepository, SqlAuditRepository } from './audit.js';
import { type BackendRepository, SqlBackendRepository } from './backends.js';
import { type BrokerKeyRepository, SqlBrokerKeyRepository } from './broker-keys.js';
import { type IdentityKeyRepository, SqlIdentityKeyRepository } from './identity-keys.js';
import { type SealedSecretRepository, SqlSealedSecretRepository } from './sealed-secrets.js';
import { type ChangeRepository, SqlChangeRepository } from './changes.js';
import { type DelegationRepository, SqlDelegationRepository } from './delegations.js';
import { type GrantRepository, SqlGrantRepository } from './grants.js';
import { type IdentityRepository, SqlIdentityRepository } from './identities.js';
import { type LeaseRepository, SqlLeaseRepository } from './leases.js';
import { type ReplayCache, SqlReplayCache } from './replay-cache.js';
import { type ReviewSessionRepository, SqlReviewSessionRepository } from './review-sessions.js';
import { type SessionRepository, SqlSessionRepository } from './sessions.js';
import { type SettingsRepository, SqlSettingsRepository } from './settings.js';
import { SqlTicketRepository, type TicketRepository } from './tickets.js';
import { SqlTrustedIssuers, type TrustedIssuers } from './trusted-issuers.js';

export type {
  AuditRepository,
  BackendRepository,
  BrokerKeyRepository,
  ChangeRepository,
  DelegationRepository,
  GrantRepository,
  IdentityKeyRepository,
  IdentityRepository,
  LeaseRepository,
  ReplayCache,
  ReviewSessionRepository,
  SealedSecretRepository,
  SessionRepository,
  SettingsRepository,
  TicketRepository,
  TrustedIssuers,
};

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
  readonly backends: BackendRepository;
  readonly grants: GrantRepository;
  readonly leases: LeaseRepository;
  /** every key of every identity (key rotation) */
  readonly identityKeys: IdentityKeyRepository;
  /** superseded authority and wrapping keys */
  readonly brokerKeys: BrokerKeyRepository;
  /** backends' sealed root secrets (wrapping-key rotation) */
  readonly sealedSecrets: SealedSecretRepository;
  readonly sessions: SessionRepository;
  readonly trustedIssuers: TrustedIssuers;
  readonly delegations: DelegationRepository;
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
  #backends?: BackendRepository;
  #grants?: GrantRepository;
  #leases?: LeaseRepository;
  #identityKeys?: IdentityKeyRepository;
  #brokerKeys?: BrokerKeyRepository;
  #sealedSecrets?: SealedSecretRepository;
  #sessions?: SessionRepository;
  #trustedIssuers?: TrustedIssuers;
  #delegations?: DelegationRepository;

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
  get backends() {
    return (this.#backends ??= new SqlBackendRepository(this.db));
  }
  get grants() {
    return (this.#grants ??= new SqlGrantRepository(this.db, this.reader));
  }
  get leases() {
    return (this.#leases ??= new SqlLeaseRepository(this.db, this.reader, dialectOf(this.db)));
  }
  get identityKeys() {
    return (this.#identityKeys ??= new SqlIdentityKeyRepository(this.db, this.reader));
  }
  get brokerKeys() {
    return (this.#brokerKeys ??= new SqlBrokerKeyRepository(this.db));
  }
  get sealedSecrets() {
    return (this.#sealedSecrets ??= new SqlSealedSecretRepository(this.db));
  }
  get sessions() {
    return (this.#sessions ??= new SqlSessionRepository(this.db, this.reader));
  }
  get trustedIssuers() {
    return (this.#trustedIssuers ??= new SqlTrustedIssuers(this.db, this.reader));
  }
  get delegations() {
    return (this.#delegations ??= new SqlDelegationRepository(this.db, this.reader));
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
