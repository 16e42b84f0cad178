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
import { listenInProcess } from './listen.js';
import { freePort, onFreePorts } from './ports.js';

export type TestDialect = 'sqlite' | 'postgres';

export interface TestBrokerOptions {
  readonly keystore?: KeyStoreKind;
  readonly dialect?: TestDialect;
  readonly env?: Readonly<Record<string, string>>;
  /** Reaper interval and friends; tests use short ones. */
  readonly leases?: Partial<LeaseSettings>;
  /** The broker's logger (none by default): tests that check what is logged. */
  readonly logger?: FastifyBaseLogger;
  /** Also start the credential proxy's listener (on config.proxyListen). */
  readonly proxy?: boolean;
}

/** An initialised data directory (as after `tessera init`) and the environment that runs a broker on it. */
export interface PreparedBroker extends BrokerAddresses {
  /**
   * Runs `start`, which binds the addresses it is given (env's TESSERA_LISTEN and
   * TESSERA_PROXY_LISTEN, or `port`), on free loopback ports, on new ones if they were taken
   * meanwhile; from then on env, config and port name the addresses it bound.
   */
  listen<T>(start: (addresses: BrokerAddresses) => Promise<T>): Promise<T>;
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

export interface BrokerAddresses {
  /** TESSERA_LISTEN and TESSERA_PROXY_LISTEN are free loopback addresses (before listen(): ports nobody has bound yet). */
  readonly env: Readonly<Record<string, string>>;
  readonly config: Config;
  /** TESSERA_LISTEN's port */
  readonly port: number;
}

/** A data directory with its key store and database, initialised as `tessera init` would. */
export async function prepareBroker(options: Omit<TestBrokerOptions, 'leases' | 'logger' | 'proxy'> = {}): Promise<PreparedBroker> {
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
  // The credential proxy has its own listener: a free port too, so brokers in parallel tests do not collide.
  const proxyListen = env.TESSERA_PROXY_LISTEN;
  const addressesOn = ([port, proxyPort]: number[]): BrokerAddresses => {
    const listening = { ...env, TESSERA_LISTEN: `127.0.0.1:${port}`, TESSERA_PROXY_LISTEN: proxyListen ?? `127.0.0.1:${proxyPort}` };
    return { env: listening, config: loadConfig({}, listening), port: port! };
  };
  const firstPorts = [await freePort(), await freePort()];
  await initialize(addressesOn(firstPorts).config);
  let current = addressesOn(firstPorts); // config now with the admin key recorded by init
  return {
    get env() {
      return current.env;
    },
    get config() {
      return current.config;
    },
    get port() {
      return current.port;
    },
    listen: (start) =>
      onFreePorts(2, async (ports) => {
        const addresses = addressesOn(ports);
        const started = await start(addresses);
        current = addresses;
        return started;
      }),
    cleanup,
  };
}

/**
 * A real broker on a loopback port: a SoftHSM2 token or the local KMS endpoint for keys, SQLite or
 * the shared PostgreSQL server for storage, initialised as `tessera init` would.
 */
export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const keystore = options.keystore ?? 'pkcs11';
  const prepared = await prepareBroker(options);
  const cleanups: (() => Promise<void>)[] = [() => prepared.cleanup()];
  const clock = new TestClock();
  const scheduler = new ManualScheduler();
  // No real timers, no WAL thread: tests run the background work they are about by scheduler.tick().
  const broker = await prepared.listen(({ config, port }) =>
    listenInProcess(
      port,
      createBroker(config, { clock, scheduler, walCheckpointThread: false, logger: options.logger, ...(options.leases && { leases: options.leases }) }),
      options.proxy ? config.proxyListen : undefined,
    ),
  );
  cleanups.push(() => broker.close());
  const { env, config: initialised } = prepared;

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
