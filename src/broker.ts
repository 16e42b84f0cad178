import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { DatabaseAuditLog } from './audit/audit-log.js';
import { type Clock, systemClock } from './clock.js';
import type { Config } from './config/config.js';
import { TesseraError } from './errors.js';
import { ProofAuthenticator } from './identity/authenticator.js';
import { Authority } from './identity/authority.js';
import { IdentityService } from './identity/identities.js';
import { KeyStores } from './keys/registry.js';
import { openStore } from './store/database.js';
import { readSetting } from './store/settings.js';

export interface Broker {
  readonly app: FastifyInstance;
  readonly identities: IdentityService;
  close(): Promise<void>;
}

const REPLAY_PRUNE_INTERVAL_MS = 60_000;

/** Wires config to store, key stores and services, and builds the HTTP app (not yet listening). */
export async function createBroker(
  config: Config,
  options: { logger?: FastifyBaseLogger; clock?: Clock } = {},
): Promise<Broker> {
  const clock = options.clock ?? systemClock;
  const store = await openStore(config.databaseUrl, { create: false });
  const keyStores = new KeyStores(config);
  try {
    const authorityKeyUri = await readSetting(store.db, 'authority_key_uri');
    if (!authorityKeyUri) throw new TesseraError('config_invalid', `No authority key in ${config.databaseUrl}: run "tessera init" first.`);
    const authority = await Authority.create(await keyStores.signer(authorityKeyUri), config.publicUrl, clock, config.credentialTtlMs / 1000);
    const audit = new DatabaseAuditLog(store.db, clock);
    const identities = new IdentityService(store.db, audit, clock, { defaultTtlMs: config.ticketTtlMs, maxTtlMs: config.ticketMaxTtlMs });
    const authenticator = new ProofAuthenticator(store.db, audit, clock, config.publicUrl);
    const app = await buildApp({ store, audit, authority, identities, authenticator, publicUrl: config.publicUrl, logger: options.logger });

    const pruneTimer = setInterval(() => {
      authenticator.pruneReplayCache().catch((error: unknown) => app.log.warn({ err: error }, 'pruning the proof replay cache failed'));
    }, REPLAY_PRUNE_INTERVAL_MS);
    pruneTimer.unref();

    return {
      app,
      identities,
      async close() {
        clearInterval(pruneTimer);
        await app.close();
        await keyStores.close();
        await store.close();
      },
    };
  } catch (error) {
    await keyStores.close();
    await store.close();
    throw error;
  }
}
