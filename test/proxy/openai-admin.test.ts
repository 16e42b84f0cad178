import Database from 'better-sqlite3';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionAgent } from '../../provisioner/provision.js';
import { type Broker, createBroker } from '../../src/broker.js';
import { BrokerClient } from '@tessera-broker/sdk';
import type { Config } from '../../src/config/config.js';
import { KeyStores } from '../../src/keys/registry.js';
import { prepareBroker, type PreparedBroker } from '../support/broker.js';
import { ManualScheduler, TestClock } from '../support/clock.js';
import { listenInProcess } from '../support/listen.js';
import { type FakeOpenAI, startFakeOpenAI } from '../support/fake-upstream.js';
import { TestAgent } from '../support/lease-env.js';
import type { ApiCredential } from './support.js';

const ADMIN_KEY = 'sk-admin-real-0123456789';
const PROJECT = 'proj_tessera';

describe('openai-admin: minted service-account keys', () => {
  let upstream: FakeOpenAI;
  let prepared: PreparedBroker;
  let keyStores: KeyStores;
  let broker: Broker | undefined;
  let admin: TestAgent;
  let agent: TestAgent;
  const clock = new TestClock();
  let scheduler: ManualScheduler;

  const create = (config: Config) => {
    scheduler = new ManualScheduler();
    return createBroker(config, { clock, scheduler, walCheckpointThread: false });
  };
  /** Starts the broker on free ports. */
  const start = async () => {
    broker = await prepared.listen(({ config, port }) => listenInProcess(port, create(config)));
  };
  /** Restarts it on the same data directory and address (clients keep its URL), as `tessera serve` after a restart would. */
  const restart = async () => {
    broker = await listenInProcess(prepared.port, create(prepared.config));
  };
  const stop = async () => {
    await broker?.close();
    broker = undefined;
  };

  beforeAll(async () => {
    upstream = await startFakeOpenAI({ apiKey: 'sk-unused', adminKey: ADMIN_KEY, projectId: PROJECT });
    prepared = await prepareBroker();
    keyStores = new KeyStores(prepared.config);
    await start();
    const url = prepared.config.publicUrl;
    const adminSigner = await keyStores.signer(prepared.config.adminKeyUri!);
    admin = await TestAgent.create(url, adminSigner, 'admin@tessera.local', clock);
    const provisioned = await provisionAgent(await BrokerClient.connect(url, adminSigner), await keyStores.get('pkcs11'), { address: 'llm-bot@acme.local', attributes: {} });
    agent = await TestAgent.create(url, await keyStores.signer(provisioned.key_uri), 'llm-bot@acme.local', clock);
    await agent.expect(200, 'POST', '/v1/enroll', { ticket: provisioned.ticket });
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'openai-minted', type: 'openai-admin', admin_key: ADMIN_KEY, project_id: PROJECT, upstream_url: upstream.url });
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: 'openai-minted', role: 'service-account', max_ttl_seconds: 3600 });
  });
  afterAll(async () => {
    await stop();
    await keyStores?.close();
    await prepared?.cleanup();
    await upstream?.close();
  });

  const lease = async (ttlSeconds = 600) => (await agent.lease('openai-minted', 'service-account', ttlSeconds)) as unknown as { lease_id: string; credential: ApiCredential };
  const openaiFor = (credential: ApiCredential) => new OpenAI({ apiKey: credential.api_key, baseURL: `${credential.base_url}/v1`, maxRetries: 0 });
  const liveKeys = () => [...upstream.serviceAccounts.values()].map((account) => account.key);

  it('refuses a rejected admin key when the backend is added', async () => {
    const reply = await admin.send('POST', '/v1/admin/backends', { name: 'bad-admin', type: 'openai-admin', admin_key: 'sk-wrong', project_id: PROJECT, upstream_url: upstream.url });
    expect(reply).toMatchObject({ status: 400, body: { error: 'backend_unreachable' } });
    expect(JSON.stringify(reply.body)).not.toContain('sk-wrong');
  });

  it('returns a real key for the real API; revoking the lease deletes the service account', async () => {
    const { lease_id, credential } = await lease();
    expect(credential.base_url).toBe(upstream.url);
    expect(liveKeys()).toContain(credential.api_key);
    const openai = openaiFor(credential);
    expect((await openai.models.list()).data[0]?.id).toBe('gpt-4o-mini');

    await agent.expect(200, 'DELETE', `/v1/leases/${lease_id}`);
    expect(liveKeys()).not.toContain(credential.api_key);
    expect(await openai.models.list().catch((error: unknown) => error)).toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('deletes the service account when the lease expires', async () => {
    const { credential } = await lease(60);
    expect(liveKeys()).toContain(credential.api_key);
    clock.advance(61_000);
    expect(liveKeys()).toContain(credential.api_key); // until the reaper runs
    await scheduler.tick();
    expect(liveKeys()).not.toContain(credential.api_key);
  });

  it('after a restart: expired leases are deleted, and an intent orphaned by a crash is found by name', async () => {
    const { credential } = await lease(60);
    await stop();
    // A crash between "create the service account" and "activate the lease": the intent is pending.
    const orphanName = 'tessera-orphaned-by-crash';
    const created = await fetch(`${upstream.url}/v1/organization/projects/${PROJECT}/service_accounts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: orphanName }),
    });
    const orphanKey = ((await created.json()) as { api_key: { value: string } }).api_key.value;
    const db = new Database(prepared.config.databaseUrl.slice('sqlite:'.length));
    const now = clock.now();
    db.prepare(
      `INSERT INTO leases (id, identity_id, backend, role, grant_id, state, revocation, issued_at, expires_at, max_expires_at)
       VALUES ('lse_orphan', ?, 'openai-minted', 'service-account', 'grt_x', 'pending', ?, ?, ?, ?)`,
    ).run(agent.identityId, JSON.stringify({ project_id: PROJECT, name: orphanName }), now, now + 600_000, now + 600_000);
    db.close();

    clock.advance(61_000);
    await restart(); // reconciles the orphaned intent before it listens
    expect(liveKeys()).not.toContain(orphanKey);
    await scheduler.tick(); // the reaper's first run takes the expired lease
    expect(liveKeys()).not.toContain(credential.api_key);
    expect(liveKeys()).not.toContain(orphanKey);
    const orphan = await admin.expect<{ state: string; revocation_reason: string }>(200, 'GET', '/v1/leases/lse_orphan');
    expect(orphan).toMatchObject({ state: 'revoked', revocation_reason: 'reconciled' });
  });
});
