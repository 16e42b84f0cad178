import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { inject } from 'vitest';
import { provisionAgent, type ProvisionResult } from '../../provisioner/provision.js';
import { type Broker, createBroker } from '../../src/broker.js';
import { BrokerClient } from '@tessera-broker/sdk';
import { type Config, loadConfig } from '../../src/config/config.js';
import { initialize } from '../../src/init.js';
import type { KeyStore, KeyStoreKind } from '../../src/keys/key-store.js';
import type { LeaseSettings } from '../../src/leases/lease-system.js';
import { KeyStores } from '../../src/keys/registry.js';
import { ManualScheduler, TestClock } from './clock.js';
import { startLocalKms } from './kms.js';
import { createTestDatabase } from './postgres.js';
import { createTestToken } from './softhsm.js';
import { freePort } from './ports.js';

export type TestDialect = 'sqlite' | 'postgres';

export interface TestBrokerOptions {
  readonly keystore?: KeyStoreKind;
  readonly dialect?: TestDialect;
  readonly env?: Readonly<Record<string, string>>;
  /** Reaper interval and friends; tests use short ones. */
  readonly leases?: Partial<LeaseSettings>;
  /** The broker's logger (none by default): tests that check what is logged. */
  readonly logger?: FastifyBaseLogger;
}

/** An initialised data directory (as after `tessera init`) and the environment that runs a broker on it. */
export interface PreparedBroker {
  readonly env: Readonly<Record<string, string>>;
  readonly config: Config;
  readonly port: number;
  /** Removes what prepareBroker() created, newest first. */
  cleanup(): Promise<void>;
}

export interface TestBroker {
  readonly url: string;
  readonly config: Config;
  readonly broker: Broker;
  readonly clock: TestClock;
  /** Background work runs only on scheduler.tick(). */
  readonly scheduler: ManualScheduler;
  readonly keyStores: KeyStores;
  readonly keyStore: KeyStore;
  readonly admin: BrokerClient;
  provision(address: string, attributes?: Record<string, string>): Promise<ProvisionResult>;
  /** A client signing with the key at `keyUri`, as the agent's node would. */
  clientFor(keyUri: string): Promise<BrokerClient>;
  /** Everything needed to run the CLI against this broker in a child process. */
  readonly cliEnv: Readonly<Record<string, string>>;
  close(): Promise<void>;
}

/** A data directory with its key store and database, initialised as `tessera init` would. */
export async function prepareBroker(options: Omit<TestBrokerOptions, 'leases' | 'logger'> = {}): Promise<PreparedBroker> {
  const keystore = options.keystore ?? 'pkcs11';
  const dialect = options.dialect ?? 'sqlite';
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) await step();
  };
  const dataDir = await mkdtemp(join(tmpdir(), 'tessera-broker-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));

  const token = await createTestToken();
  cleanups.push(() => token.cleanup());
  const env: Record<string, string> = {
    TESSERA_DATA_DIR: dataDir,
    TESSERA_KEYSTORE: keystore,
    TESSERA_PKCS11_MODULE: token.modulePath,
    TESSERA_PKCS11_TOKEN: token.tokenLabel,
    TESSERA_PKCS11_PIN: token.pin,
    SOFTHSM2_CONF: token.confPath,
    TESSERA_LOG_LEVEL: 'silent',
    ...options.env,
  };
  if (keystore === 'kms') {
    const kms = await startLocalKms();
    cleanups.push(() => kms.stop());
    Object.assign(env, kms.env);
    // KmsKeyStore.fromEnvironment() reads the standard AWS variables from the process.
    Object.assign(process.env, kms.env);
  }
  if (dialect === 'postgres') {
    const database = await createTestDatabase(inject('postgresUrl'));
    cleanups.push(() => database.drop());
    env.TESSERA_DATABASE_URL = database.url;
  }
  const port = await freePort();
  env.TESSERA_LISTEN = `127.0.0.1:${port}`;
  // The credential proxy's own listener: a free port too, so brokers in parallel tests do not collide.
  env.TESSERA_PROXY_LISTEN ??= `127.0.0.1:${await freePort()}`;

  await initialize(loadConfig({}, env));
  return { env, config: loadConfig({}, env), port, cleanup }; // config now with the admin key recorded by init
}

/**
 * A real broker on a loopback port: a SoftHSM2 token or the local KMS endpoint for keys, SQLite or
 * the shared PostgreSQL server for storage, initialised as `tessera init` would.
 */
export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const keystore = options.keystore ?? 'pkcs11';
  const prepared = await prepareBroker(options);
  const { env, port, config: initialised } = prepared;
  const cleanups: (() => Promise<void>)[] = [() => prepared.cleanup()];
  const clock = new TestClock();
  const scheduler = new ManualScheduler();
  // No real timers, no WAL thread: tests run the background work they are about by scheduler.tick().
  const broker = await createBroker(initialised, { clock, scheduler, walCheckpointThread: false, logger: options.logger, ...(options.leases && { leases: options.leases }) });
  cleanups.push(() => broker.close());
  await broker.app.listen({ host: '127.0.0.1', port });

  const keyStores = new KeyStores(initialised);
  cleanups.push(() => keyStores.close());
  const keyStore = await keyStores.get(keystore);
  const admin = await BrokerClient.connect(initialised.publicUrl, await keyStores.signer(initialised.adminKeyUri!));

  return {
    url: initialised.publicUrl,
    config: initialised,
    broker,
    clock,
    scheduler,
    keyStores,
    keyStore,
    admin,
    cliEnv: env,
    provision: (address, attributes = {}) => provisionAgent(admin, keyStore, { address, attributes }),
    clientFor: async (keyUri) => BrokerClient.connect(initialised.publicUrl, await keyStores.signer(keyUri)),
    async close() {
      for (const cleanup of cleanups.reverse()) await cleanup();
    },
  };
}
