/**
 * Several `tessera serve` processes on one PostgreSQL database and one key store, as behind a load
 * balancer: every replica accepts proofs for the same public URL (replica 0's address stands in for
 * the balancer), and a test picks the replica a request goes to with TestAgent.via().
 */
import pg from 'pg';
import { provisionAgent } from '../../provisioner/provision.js';
import { BrokerClient } from '@tessera-broker/sdk';
import { systemClock } from '../../src/clock.js';
import { KeyStores } from '../../src/keys/registry.js';
import { type BrokerChild, startBrokerChild } from './broker-child.js';
import { prepareBroker, type PreparedBroker } from './broker.js';
import { TestAgent } from './lease-env.js';
import { onFreePorts } from './ports.js';

export interface ReplicaSet {
  /** The URL proofs name (replica 0's address). */
  readonly publicUrl: string;
  /** Each replica's own address. */
  readonly urls: readonly string[];
  readonly prepared: PreparedBroker;
  readonly keyStores: KeyStores;
  /** The broker database (shared by all replicas), for reading state straight from it. */
  readonly db: pg.Pool;
  readonly admin: TestAgent;
  /** Provisions (through replica 0) and enrolls an agent; its requests go to replica 0 until via(). */
  enroll(address: string): Promise<TestAgent>;
  /** SIGKILLs replica `index`: no shutdown code runs. */
  kill(index: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReplicas(count: number, env: Readonly<Record<string, string>> = {}): Promise<ReplicaSet> {
  const prepared = await prepareBroker({ dialect: 'postgres', env });
  // Replica 0 first: its address is the public URL every replica accepts proofs for.
  const first = await prepared.listen(({ env }) => startBrokerChild(env));
  const publicUrl = prepared.config.publicUrl;
  const others = await Promise.all(
    Array.from({ length: count - 1 }, () =>
      onFreePorts(2, async ([port, proxyPort]) => {
        const listen = `127.0.0.1:${port}`;
        return { listen, child: await startBrokerChild({ ...prepared.env, TESSERA_LISTEN: listen, TESSERA_PROXY_LISTEN: `127.0.0.1:${proxyPort}`, TESSERA_PUBLIC_URL: publicUrl }) };
      }),
    ),
  );
  const addresses = [prepared.env.TESSERA_LISTEN!, ...others.map((other) => other.listen)];
  const children: (BrokerChild | undefined)[] = [first, ...others.map((other) => other.child)];
  const keyStores = new KeyStores(prepared.config);
  const db = new pg.Pool({ connectionString: prepared.config.databaseUrl, max: 4, types: { getTypeParser: (oid: number, format?: any) => (oid === 20 ? Number : pg.types.getTypeParser(oid, format)) } });
  const admin = await TestAgent.create(publicUrl, await keyStores.signer(prepared.config.adminKeyUri!), 'admin@tessera.local', systemClock);
  const adminClient = await BrokerClient.connect(publicUrl, await keyStores.signer(prepared.config.adminKeyUri!));
  return {
    publicUrl,
    urls: addresses.map((address) => `http://${address}`),
    prepared,
    keyStores,
    db,
    admin,
    async enroll(address) {
      const provisioned = await provisionAgent(adminClient, await keyStores.get('pkcs11'), { address, attributes: {} });
      const agent = await TestAgent.create(publicUrl, await keyStores.signer(provisioned.key_uri), address, systemClock);
      await agent.expect(200, 'POST', '/v1/enroll', { ticket: provisioned.ticket });
      return agent;
    },
    async kill(index) {
      await children[index]?.kill();
      children[index] = undefined;
    },
    async close() {
      await Promise.all(children.map((child) => child?.stop()));
      await db.end();
      await keyStores.close();
      await prepared.cleanup();
    },
  };
}
