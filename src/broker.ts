import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { DatabaseAuditLog } from './audit/audit-log.js';
import { AuditCheckpointer } from './audit/checkpoints.js';
import { RejectionSummary } from './audit/rejection-summary.js';
import type { ChangeFeed } from './changes/change-feed.js';
import { openChangeFeed } from './changes/open.js';
import { pruneChanges } from './changes/retention.js';
import { type Clock, type Scheduler, systemClock, systemScheduler } from './clock.js';
import type { Config } from './config/config.js';
import { TesseraError } from './errors.js';
import { ProofAuthenticator } from './identity/authenticator.js';
import { IdentityCache } from './identity/identity-cache.js';
import { Authority } from './identity/authority.js';
import { IdentityService } from './identity/identities.js';
import { KeyStores } from './keys/registry.js';
import { DEFAULT_LEASE_SETTINGS, type LeaseSettings, LeaseSystem } from './leases/lease-system.js';
import { FailureLimit } from './limits/failure-limit.js';
import { CredentialProxy } from './proxy/credential-proxy.js';
import { rotateWrappingKey } from './secrets/wrapping-key-rotation.js';
import { KeyStoreWrappingKeys } from './secrets/wrapping-keys.js';
import { SessionRegistry } from './sessions/session-registry.js';
import { openStore } from './store/database.js';
import { runExclusive } from './store/exclusive.js';

export interface Broker {
  readonly app: FastifyInstance;
  readonly identities: IdentityService;
  /** Exposed for its replay cache: tests prune it at chosen instants. */
  readonly authenticator: ProofAuthenticator;
  readonly sessions: SessionRegistry;
  /** Prunes the replay cache and old change rows, on one broker at a time (run by the scheduler). */
  prune(): Promise<void>;
  readonly auditCheckpoints: AuditCheckpointer;
  /** Changes by every broker on the database; caches subscribe to it (src/changes/). */
  readonly changes: ChangeFeed;
  readonly leases: LeaseSystem;
  /** The credential proxy for proxied leases; serve (or a test) listens on config.proxyListen. */
  readonly proxy: CredentialProxy;
  /** Anonymous rejections not yet written; flushed every window and on close (tests flush at will). */
  readonly rejections: RejectionSummary;
  close(): Promise<void>;
}

const PRUNE_INTERVAL_MS = 60_000;

/** Wires config to store, key stores and services, and builds the HTTP app (not yet listening). */
export async function createBroker(
  config: Config,
  options: {
    logger?: FastifyBaseLogger;
    clock?: Clock;
    leases?: Partial<LeaseSettings>;
    /** Drives the reaper, audit checkpoint polls, pruning and change-feed polls (tests: run them on demand). */
    scheduler?: Scheduler;
    /** SQLite: checkpoint the WAL on a background thread (default true; see WalCheckpointer). */
    walCheckpointThread?: boolean;
  } = {},
): Promise<Broker> {
  const clock = options.clock ?? systemClock;
  const scheduler = options.scheduler ?? systemScheduler;
  const store = await openStore(config.databaseUrl, { create: false, backgroundCheckpoints: options.walCheckpointThread ?? true });
  const keyStores = new KeyStores(config);
  let leases: LeaseSystem | undefined;
  let changes: ChangeFeed | undefined;
  try {
    if (!(await store.repos.settings.get('authority_key_uri'))) throw new TesseraError('config_invalid', `No authority key in ${config.databaseUrl}: run "tessera init" first.`);
    const audit = new DatabaseAuditLog(store.repos, clock);
    const identities = new IdentityService(store, audit, clock, {
      defaultTtlMs: config.ticketTtlMs,
      maxTtlMs: config.ticketMaxTtlMs,
      failures: { max: config.ticketFailureLimit, windowMs: config.ticketFailureWindowMs },
    });
    const rejections = new RejectionSummary(audit, clock, config.auditRejectionWindowMs);
    changes = await openChangeFeed(store, config.databaseUrl, clock, scheduler, { maxStalenessMs: config.replicaMaxStalenessMs }, options.logger);
    const feed = changes;
    const authority = await Authority.open({ store, keyStores, audit, feed, clock }, config.publicUrl, config.credentialTtlMs / 1000);
    const sessions = new SessionRegistry(store, audit, clock, feed, { maxLifetimeMs: config.sessionMaxLifetimeMs });
    const identityCache = new IdentityCache(store.repos, feed);
    const authenticator = new ProofAuthenticator(store.repos, identityCache, audit, clock, config.publicUrl, rejections, feed, sessions);
    const authFailures = { max: config.authFailureLimit, windowMs: config.authFailureWindowMs };
    const wrappingKeys = new KeyStoreWrappingKeys(keyStores, store.repos.settings);
    const rotateWrapping = (actor: string) => rotateWrappingKey({ store, keyStores, wrappingKeys, audit, clock }, actor);
    leases = new LeaseSystem(store, audit, clock, wrappingKeys, { ...DEFAULT_LEASE_SETTINGS, pendingGraceMs: config.leasePendingGraceMs, ...options.leases }, {
      proxyUrl: config.proxyPublicUrl,
    }, feed, identityCache, options.logger, { maxDepth: config.delegationMaxDepth });
    const app = await buildApp({ store, audit, authority, identities, authenticator, sessions, leases, rotateWrappingKey: rotateWrapping, changes: feed, clock, publicUrl: config.publicUrl, limits: config.limits, rejections, authFailures, trustedProxies: config.trustedProxies, logger: options.logger });
    // Before listening: on an embedded store every pending lease is an orphan of a previous process;
    // on a shared one, those older than the grace period (another replica may be issuing the rest).
    await leases.start((error) => app.log.error({ err: error }, 'lease reaper sweep failed'), scheduler);

    const started = leases;
    const prune = () =>
      runExclusive(store, 'prune', async (repos) => {
        await authenticator.pruneReplayCache(repos);
        await pruneChanges(repos.changes, clock.now());
        // Superseded keys past their grace or overlap: audited once (they are refused from then on anyway).
        await identities.retireExpiredKeys();
        await authority.retireExpiredKeys();
      }).then(() => undefined);
    const stopPruning = scheduler.every(PRUNE_INTERVAL_MS, () => prune().catch((error: unknown) => app.log.warn({ err: error }, 'pruning the proof replay cache or the change feed failed')));
    const auditCheckpoints = new AuditCheckpointer(
      store.repos.audit,
      authority,
      clock,
      { everyEvents: config.auditCheckpointEvery, intervalMs: config.auditCheckpointIntervalMs },
      (work) => runExclusive(store, 'audit-checkpoint', work),
    );
    const stopCheckpoints = auditCheckpoints.start((error) => app.log.error({ err: error }, 'signing an audit checkpoint failed'), scheduler);
    const proxy = new CredentialProxy({
      store,
      audit,
      clock,
      backends: started.backends,
      limits: config.limits,
      rejections,
      tokenFailures: new FailureLimit(clock, authFailures),
      trustedProxies: config.trustedProxies,
      logger: app.log,
    });
    const stopRejections = rejections.start((error) => app.log.error({ err: error }, 'writing the rejection summary failed'), scheduler);

    return {
      app,
      identities,
      authenticator,
      sessions,
      prune,
      auditCheckpoints,
      changes: feed,
      leases: started,
      proxy,
      rejections,
      async close() {
        stopPruning();
        await proxy.close();
        await app.close();
        await stopRejections();
        await started.close();
        await stopCheckpoints();
        await feed.close();
        await keyStores.close();
        await store.close();
      },
    };
  } catch (error) {
    await leases?.close();
    await changes?.close();
    await keyStores.close();
    await store.close();
    throw error;
  }
}
