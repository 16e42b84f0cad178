import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAgent } from '../../provisioner/provision.js';
import { BrokerClient } from '@tessera-broker/sdk';
import { systemClock } from '../../src/clock.js';
import { KeyStores } from '../../src/keys/registry.js';
import { type BrokerChild, startBrokerChild } from '../support/broker-child.js';
import { prepareBroker, type PreparedBroker } from '../support/broker.js';
import { TestAgent, tesseraRoles } from '../support/lease-env.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

const IN_FLIGHT = 40;
const KILL_AFTER_GRANTS = 10;

describe('crash safety: a broker killed mid-issue leaves no credential without a lease', () => {
  let cluster: PostgresCluster;
  let prepared: PreparedBroker;
  let keyStores: KeyStores;
  let broker: BrokerChild | undefined;

  beforeAll(async () => {
    [cluster, prepared] = await Promise.all([startPostgres(), prepareBroker()]);
    keyStores = new KeyStores(prepared.config);
    broker = await prepared.listen(({ env }) => startBrokerChild(env));
  });
  afterAll(async () => {
    await broker?.stop();
    await keyStores?.close();
    await prepared?.cleanup();
    await cluster?.destroy();
  });

  it('reconciles on restart: every leased role belongs to an active lease, nothing stays pending', async () => {
    const url = prepared.config.publicUrl;
    const adminSigner = await keyStores.signer(prepared.config.adminKeyUri!);
    const admin = await TestAgent.create(url, adminSigner, 'admin@tessera.local', systemClock);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'db', type: 'postgres', connection_url: cluster.url });
    const provisioned = await provisionAgent(await BrokerClient.connect(url, adminSigner), await keyStores.get('pkcs11'), { address: 'crash@acme.local', attributes: {} });
    const agent = await TestAgent.create(url, await keyStores.signer(provisioned.key_uri), 'crash@acme.local', systemClock);
    await agent.expect(200, 'POST', '/v1/enroll', { ticket: provisioned.ticket });
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: 'db', role: 'readonly', max_ttl_seconds: 600 });

    // Fire the requests, then kill the broker once a few leases came back: the rest are somewhere
    // between authentication, intent, mint and activation.
    let grantedCount = 0;
    let enoughGranted!: () => void;
    const granted = new Promise<void>((resolve) => (enoughGranted = resolve));
    const requests = Array.from({ length: IN_FLIGHT }, () =>
      agent.send('POST', '/v1/leases', { backend: 'db', role: 'readonly' }).then(
        (reply) => {
          if (reply.status === 201 && ++grantedCount === KILL_AFTER_GRANTS) enoughGranted();
          return reply.status;
        },
        () => 'connection lost',
      ),
    );
    await Promise.race([granted, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    await broker!.kill();
    const outcomes = await Promise.all(requests);

    const before = leaseStates(prepared.config.dataDir);
    const rolesBefore = await tesseraRoles(cluster.url);
    broker = await startBrokerChild(prepared.env); // on the same address: a restart
    const after = leaseStates(prepared.config.dataDir);
    const roles = await tesseraRoles(cluster.url);
    console.log(
      `crash: ${outcomes.filter((o) => o === 201).length}/${IN_FLIGHT} granted before SIGKILL; ` +
        `states before restart ${JSON.stringify(count(before))} with ${rolesBefore.length} roles upstream, ` +
        `after ${JSON.stringify(count(after))} with ${roles.length}`,
    );

    expect(before.length).toBeGreaterThan(0);
    expect(after.filter((l) => l.state !== 'active' && l.state !== 'revoked')).toEqual([]);
    const active = new Set(after.filter((l) => l.state === 'active').map((l) => l.username));
    expect(roles.filter((role) => !active.has(role))).toEqual([]);
    expect([...active].filter((username) => !roles.includes(username))).toEqual([]);
    for (const lease of after.filter((l) => l.state === 'revoked')) expect(lease.reason).toBe('reconciled');
  });
});

function leaseStates(dataDir: string): { state: string; username: string; reason: string | null }[] {
  const db = new Database(join(dataDir, 'tessera.db'), { readonly: true });
  try {
    const rows = db.prepare('SELECT state, revocation, revocation_reason FROM leases').all() as { state: string; revocation: string; revocation_reason: string | null }[];
    return rows.map((row) => ({ state: row.state, username: (JSON.parse(row.revocation) as { username: string }).username, reason: row.revocation_reason }));
  } finally {
    db.close();
  }
}

const count = (leases: { state: string }[]) => leases.reduce<Record<string, number>>((acc, l) => ({ ...acc, [l.state]: (acc[l.state] ?? 0) + 1 }), {});
