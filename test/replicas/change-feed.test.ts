import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { AuditCheckpointer, fixedCheckpointKey } from '../../src/audit/checkpoints.js';
import { CHANGE_KINDS, type ChangeKind } from '../../src/changes/change-feed.js';
import { FeedCache } from '../../src/changes/feed-cache.js';
import { LocalChangeFeed } from '../../src/changes/local-change-feed.js';
import { PostgresChangeFeed } from '../../src/changes/postgres-change-feed.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import type { Signer } from '../../src/keys/key-store.js';
import { openStore, type Store } from '../../src/store/database.js';
import { runExclusive } from '../../src/store/exclusive.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { ManualScheduler, TestClock } from '../support/clock.js';
import { enrolledAgent, eventually } from '../support/lease-env.js';
import { createTestDatabase, withClient } from '../support/postgres.js';
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import pg from 'pg';

const insertIdentity = (client: pg.Client | pg.PoolClient, id: string) =>
  client.query(
    `INSERT INTO identities (id, address, role, status, public_key, key_uri, attributes, created_at) VALUES ($1, $1 || '@feed.test', 'agent', 'pending', 'x', 'memory:x', '{}', 0)`,
    [id],
  );

/** An HTTP API backend: adding it proves nothing upstream, so none needs to run. */
const addHttpBackend = (env: TestBroker, name: string) =>
  env.admin.request('POST', '/v1/admin/backends', { name, type: 'http', upstream_url: 'http://127.0.0.1:9', secret: 'upstream-secret', scopes: { reader: [{ methods: ['GET'], path_prefix: '/v1' }] } });

/** Another broker (or the CLI) changes the backend's row straight in the shared database. */
async function expectBackendRebuiltAfterOutsideChange(env: TestBroker, name: string, changeRow: () => Promise<void>): Promise<void> {
  await addHttpBackend(env, name);
  const backends = env.broker.leases.backends;
  const before = await backends.instance(name);
  expect(await backends.instance(name)).toBe(before);
  await changeRow();
  await env.broker.changes.catchUp();
  expect(await backends.instance(name)).not.toBe(before);
}

describe('the change feed on PostgreSQL', () => {
  let database: { url: string; drop(): Promise<void> };
  let stores: Store[] = [];
  let feeds: PostgresChangeFeed[] = [];
  const clock = new TestClock();
  const scheduler = new ManualScheduler();

  beforeAll(async () => {
    database = await createTestDatabase(inject('postgresUrl'));
  });
  afterEach(async () => {
    for (const feed of feeds) await feed.close();
    for (const store of stores) await store.close();
    feeds = [];
    stores = [];
  });
  afterAll(async () => {
    await database?.drop();
  });

  async function openFeed(): Promise<{ feed: PostgresChangeFeed; seen: string[] }> {
    const store = await openStore(database.url);
    stores.push(store);
    const feed = await PostgresChangeFeed.open(database.url, store.repos.changes, clock, scheduler, { maxStalenessMs: 2_000, pollMs: 500 });
    feeds.push(feed);
    const seen: string[] = [];
    feed.subscribe(CHANGE_KINDS, (kind: ChangeKind, key) => seen.push(`${kind}:${key}`));
    return { feed, seen };
  }

  it('delivers each committed change once, also when transactions commit out of id order', async () => {
    const { feed, seen } = await openFeed();
    const [first, second] = [`a${randomBytes(4).toString('hex')}`, `b${randomBytes(4).toString('hex')}`];
    const early = new pg.Client({ connectionString: database.url });
    await early.connect();
    try {
      await early.query('BEGIN');
      await insertIdentity(early, first); // takes the lower change id, commits last
      await withClient(database.url, (client) => insertIdentity(client, second));
      await feed.read();
      expect(seen).toEqual([`identity:${second}`]);
      await early.query('COMMIT');
      await feed.read();
      await feed.read();
      expect(seen).toEqual([`identity:${second}`, `identity:${first}`]);
    } finally {
      await early.end();
    }
  });

  it('wakes every other replica by NOTIFY, without waiting for a poll', async () => {
    const [one, two] = [await openFeed(), await openFeed()];
    const id = `n${randomBytes(4).toString('hex')}`;
    await withClient(database.url, (client) => insertIdentity(client, id));
    // The scheduler never ticks here: only a notification can have started these reads.
    await eventually(async () => {
      expect(one.seen).toEqual([`identity:${id}`]);
      expect(two.seen).toEqual([`identity:${id}`]);
    }, 10_000, 5);
  });

  it('drops everything cached after a gap longer than the staleness bound', async () => {
    const { feed, seen } = await openFeed();
    clock.advance(5_000);
    try {
      expect(feed.sync()).toBe(false);
      await feed.ensureCurrent();
      expect(feed.sync()).toBe(true);
      expect(seen).toEqual(CHANGE_KINDS.map((kind) => `${kind}:null`)); // identities, sessions, backends, broker keys
    } finally {
      clock.release();
    }
  });
});

describe('a replica that cannot confirm it is current', () => {
  let env: TestBroker;

  beforeAll(async () => {
    env = await startTestBroker({ dialect: 'postgres', env: { TESSERA_REPLICA_MAX_STALENESS: '300ms' } });
  });
  afterAll(async () => {
    await env?.close();
  });

  it('refuses authenticated requests (503 replica_stale) and says so on /healthz until it can read the feed again', async () => {
    const agent = await enrolledAgent(env, 'stale@acme.local');
    await agent.expect(200, 'GET', '/v1/whoami');
    const blocker = new pg.Client({ connectionString: env.config.databaseUrl });
    await blocker.connect();
    try {
      // The feed's reads now wait for the lock, and the bound has passed since the last one.
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE changes IN ACCESS EXCLUSIVE MODE');
      env.clock.advance(1_000);
      expect(await agent.send('GET', '/v1/whoami')).toMatchObject({ status: 503, body: { error: 'replica_stale' } });
      const health = await fetch(`${env.url}/healthz`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'replica_stale' });
      await blocker.query('COMMIT');
    } finally {
      await blocker.end();
    }
    await eventually(() => agent.expect(200, 'GET', '/v1/whoami'), 10_000, 50);
    expect(await (await fetch(`${env.url}/healthz`)).json()).toMatchObject({ status: 'ok', revocations_pending: 0 });
  });

  it('rebuilds a backend instance once another broker changed the backend', async () => {
    await expectBackendRebuiltAfterOutsideChange(env, 'outside-pg', () =>
      withClient(env.config.databaseUrl, async (client) => void (await client.query(`UPDATE backends SET created_by = 'other-replica' WHERE name = 'outside-pg'`))),
    );
  });

  it('serves from its cache only what the feed vouches for: a revocation written by another broker is refused once delivered', async () => {
    const agent = await enrolledAgent(env, 'cached@acme.local');
    await agent.expect(200, 'GET', '/v1/whoami'); // cached as active
    // Another broker's write, straight to the shared database.
    await withClient(env.config.databaseUrl, (client) => client.query(`UPDATE identities SET status = 'revoked' WHERE id = $1`, [agent.identityId]));
    await env.broker.changes.catchUp();
    expect(await agent.send('GET', '/v1/whoami')).toMatchObject({ status: 403, body: { error: 'identity_revoked' } });
  });
});

describe('the change feed on an embedded (SQLite) store', () => {
  let env: TestBroker;

  beforeAll(async () => {
    env = await startTestBroker();
  });
  afterAll(async () => {
    await env?.close();
  });

  it('drops a cached identity before its next request when any connection changes it', async () => {
    const agent = await enrolledAgent(env, 'local@acme.local');
    await agent.expect(200, 'GET', '/v1/whoami'); // cached as active
    const database = new SqliteDatabase(env.config.databaseUrl.slice('sqlite:'.length));
    try {
      database.pragma('busy_timeout = 5000');
      database.prepare(`UPDATE identities SET status = 'revoked' WHERE id = ?`).run(agent.identityId);
    } finally {
      database.close();
    }
    expect(await agent.send('GET', '/v1/whoami')).toMatchObject({ status: 403, body: { error: 'identity_revoked' } });
  });

  it('rebuilds a backend instance once another connection changed the backend', async () => {
    await expectBackendRebuiltAfterOutsideChange(env, 'outside-sqlite', async () => {
      const database = new SqliteDatabase(env.config.databaseUrl.slice('sqlite:'.length));
      try {
        database.pragma('busy_timeout = 5000');
        database.prepare(`UPDATE backends SET created_by = 'cli' WHERE name = 'outside-sqlite'`).run();
      } finally {
        database.close();
      }
    });
  });

  it('keeps what a cache read while only another kind changed, not what may predate a change of its own kind', async () => {
    const store = await openStore('sqlite::memory:');
    try {
      const feed = await LocalChangeFeed.open(store.repos.changes);
      const identities = new FeedCache<string>(feed, 'identity');
      await identities.get('kept', async () => {
        await sql`INSERT INTO backends (name, type, config, sealed_secret, wrapped_key, wrapping_key_uri, created_at, created_by) VALUES ('b', 'http', '{}', 'x', 'x', 'x', 0, 'test')`.execute(store.db);
        return 'read while a backend changed';
      });
      await identities.get('dropped', async () => {
        await sql`INSERT INTO identities (id, address, role, status, public_key, key_uri, attributes, created_at) VALUES ('i', 'i@feed.test', 'agent', 'pending', 'x', 'memory:x', '{}', 0)`.execute(store.db);
        return 'read while an identity changed';
      });
      expect(await identities.get('kept', async () => 'not read again')).toBe('read while a backend changed');
      expect(await identities.get('dropped', async () => 'read again')).toBe('read again');
    } finally {
      await store.close();
    }
  });
});

describe('the change feed records only what replicas cache', () => {
  const recordedKinds = async (url: string) => {
    const store = await openStore(url);
    try {
      await store.db.transaction().execute(async (trx) => {
        await sql`INSERT INTO identities (id, address, role, status, public_key, key_uri, attributes, created_at) VALUES ('i', 'i@feed.test', 'agent', 'active', 'x', 'memory:x', '{}', 0)`.execute(trx);
        await sql`INSERT INTO backends (name, type, config, sealed_secret, wrapped_key, wrapping_key_uri, created_at, created_by) VALUES ('b', 'http', '{}', 'x', 'x', 'x', 0, 'test')`.execute(trx);
        await sql`INSERT INTO grants (id, subject, backend, role, max_ttl_ms, default_ttl_ms, created_at, created_by) VALUES ('g', 'i@feed.test', 'b', 'r', 1, 1, 0, 'test')`.execute(trx);
        await sql`INSERT INTO leases (id, identity_id, backend, role, grant_id, state, revocation, issued_at, expires_at, max_expires_at) VALUES ('l', 'i', 'b', 'r', 'g', 'pending', '{}', 0, 1, 1)`.execute(trx);
        await sql`UPDATE leases SET state = 'active'`.execute(trx);
      });
      return (await sql<{ kind: string }>`SELECT kind FROM changes ORDER BY id`.execute(store.db)).rows.map((row) => row.kind);
    } finally {
      await store.close();
    }
  };

  it('writes change rows for identities, backends and grants, none for leases (SQLite)', async () => {
    expect(await recordedKinds('sqlite::memory:')).toEqual(['identity', 'backend', 'grant']);
  });

  it('writes change rows for identities, backends and grants, none for leases (PostgreSQL)', async () => {
    const database = await createTestDatabase(inject('postgresUrl'));
    try {
      expect(await recordedKinds(database.url)).toEqual(['identity', 'backend', 'grant']);
    } finally {
      await database.drop();
    }
  });
});

describe('work that must happen once', () => {
  let env: TestBroker;
  const others: Store[] = [];

  beforeAll(async () => {
    env = await startTestBroker({ dialect: 'postgres' });
    // Three replicas' stores, each with its own pool.
    for (let i = 0; i < 3; i++) others.push(await openStore(env.config.databaseUrl));
  });
  afterAll(async () => {
    for (const store of others) await store.close();
    await env?.close();
  });

  it('signs a due audit checkpoint on one replica while three try', async () => {
    const authority = await env.keyStores.signer((await others[0]!.repos.settings.get('authority_key_uri'))!);
    // The first signature waits until the test lets it go: the other replicas try meanwhile.
    let signatures = 0;
    let signing!: () => void;
    const firstSigning = new Promise<void>((resolve) => (signing = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const gated: Signer = {
      uri: authority.uri,
      publicKey: authority.publicKey,
      async sign(data) {
        if (signatures++ === 0) {
          signing();
          await released;
        }
        return authority.sign(data);
      },
    };
    const kid = await keyThumbprint(authority.publicKey);
    const [first, ...rest] = others.map(
      (store) => new AuditCheckpointer(store.repos.audit, fixedCheckpointKey(gated, kid), env.clock, { everyEvents: 1, intervalMs: 60_000 }, (work) => runExclusive(store, 'audit-checkpoint', work)),
    );
    const signed = first!.checkpointIfDue();
    await firstSigning;
    expect(await Promise.all(rest.map((checkpointer) => checkpointer.checkpointIfDue()))).toEqual([undefined, undefined]);
    release();
    expect(await signed).toMatchObject({ seq: expect.any(Number) });
    expect(signatures).toBe(1);
  });
});
