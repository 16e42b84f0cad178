/**
 * The SDK against a real broker (SoftHSM2 keys, SQLite) leasing real roles on the shared
 * PostgreSQL server: credentials are checked by logging in with the official `pg` client.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { type AutoRenewEnd, BrokerRequestError, createClient, isPostgresCredential, type PostgresCredential, type Renewal, type TesseraClient } from '../../src/sdk/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { createTestDatabase } from '../support/postgres.js';

const BACKEND = 'orders';
const READER = ['CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}', 'GRANT CONNECT ON DATABASE {{database}} TO {{name}}', 'GRANT USAGE ON SCHEMA public TO {{name}}', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{name}}'];

/** Logs in with the leased credential and reads the table; throws when the login is refused. */
async function readAs(credential: PostgresCredential): Promise<number> {
  const client = new pg.Client({ host: credential.host, port: credential.port, database: credential.database, user: credential.username, password: credential.password });
  client.on('error', () => undefined); // a revoked role's session is terminated under us
  await client.connect();
  try {
    return (await client.query('SELECT count(*)::int AS n FROM items')).rows[0].n as number;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection'),
    (error: unknown) => error,
  );
}

describe('SDK', () => {
  let broker: TestBroker;
  let database: { url: string; drop(): Promise<void> };
  const clients: TesseraClient[] = [];

  /** A provisioned, enrolled agent with grants: `reader` (max 1 h) and `short` (3 s default, 10 s max). */
  async function agent(address: string): Promise<TesseraClient> {
    const provisioned = await broker.provision(address);
    await (await broker.clientFor(provisioned.key_uri)).request('POST', '/v1/enroll', { ticket: provisioned.ticket });
    for (const [role, max, def] of [['reader', 3600, 300], ['short', 10, 3]] as const) {
      await broker.admin.request('POST', '/v1/admin/grants', { subject: address, backend: BACKEND, role, max_ttl_seconds: max, default_ttl_seconds: def });
    }
    // The documented path: a key URI, the key store opened from the (test broker's) configuration.
    const client = await createClient({ broker: broker.url, key: provisioned.key_uri, config: broker.config });
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    broker = await startTestBroker();
    database = await createTestDatabase(inject('postgresUrl'));
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query("CREATE TABLE items (id serial PRIMARY KEY, name text); INSERT INTO items (name) VALUES ('a'), ('b')");
    await admin.end();
    await broker.admin.request('POST', '/v1/admin/backends', {
      name: BACKEND,
      type: 'postgres',
      connection_url: database.url,
      roles: { reader: { creation_statements: READER }, short: { creation_statements: READER } },
    });
  });

  afterAll(async () => {
    for (const client of clients) await client.close();
    await broker?.close();
    await database?.drop();
  });

  it('leases a PostgreSQL login, renews it, and revoking it locks the role out', async () => {
    const tessera = await agent('sdk-reader@test.local');
    expect((await tessera.whoami()).address).toBe('sdk-reader@test.local');

    const lease = await tessera.lease<PostgresCredential>(BACKEND, { role: 'reader', ttl: '5m' });
    expect(isPostgresCredential(lease.credential)).toBe(true);
    expect(lease).toMatchObject({ backend: BACKEND, role: 'reader', renewable: true });
    expect(lease.expiresAt.getTime() - lease.issuedAt.getTime()).toBe(300_000);
    expect(await readAs(lease.credential)).toBe(2);

    const renewed = await tessera.renew(lease.id, { ttl: 600 });
    expect(renewed.leaseId).toBe(lease.id);
    expect(renewed.expiresAt.getTime()).toBeGreaterThan(lease.expiresAt.getTime());

    expect(await tessera.revoke(lease.id)).toEqual({ leaseId: lease.id, state: 'revoked' });
    await expect(readAs(lease.credential)).rejects.toThrow(/password authentication failed|does not exist|not permitted to log in/);
    const error = await rejection(tessera.renew(lease.id));
    expect(error).toBeInstanceOf(BrokerRequestError);
    expect(error).toMatchObject({ status: 409, code: 'lease_inactive' });
  });

  it('reports refusals as typed errors', async () => {
    const tessera = await agent('sdk-refused@test.local');
    await expect(rejection(tessera.lease(BACKEND, { role: 'writer' }))).resolves.toMatchObject({ status: 403, code: 'no_grant' });
    await expect(rejection(tessera.lease(BACKEND, { role: 'short', ttl: '1h' }))).resolves.toMatchObject({ status: 400, code: 'ttl_exceeds_max' });
    await expect(rejection(tessera.lease(BACKEND, { role: 'reader', ttl: 'soon' }))).resolves.toMatchObject({ code: 'invalid_request' });
  });

  it('autoRenew keeps renewing, and stop() awaits the renewal in flight and leaves no timer', async () => {
    const tessera = await agent('sdk-renewer@test.local');
    // Every timer autoRenew arms, to check none is left armed after stop() (Timeout#_destroyed
    // turns true once a timer fired or was cleared; autoRenew's timers are unref'd, so
    // getActiveResourcesInfo() would not see them).
    const timers: NodeJS.Timeout[] = [];
    const realSetTimeout = globalThis.setTimeout;
    const spy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((...args: Parameters<typeof setTimeout>) => {
      const timer = realSetTimeout(...args);
      if (new Error().stack?.includes('auto-renew')) timers.push(timer);
      return timer;
    }) as typeof setTimeout);
    try {
      const lease = await tessera.lease<PostgresCredential>(BACKEND, { role: 'short', ttl: 3 });
      const renewals: Renewal[] = [];
      const renewer = tessera.autoRenew(lease, { renewBefore: 0.5, onRenew: (renewal) => renewals.push(renewal) });
      await vi.waitFor(() => expect(renewals.length).toBeGreaterThanOrEqual(2), { timeout: 8_000, interval: 50 });
      expect(renewals[1]!.expiresAt.getTime()).toBeGreaterThan(renewals[0]!.expiresAt.getTime());
      expect(await readAs(lease.credential)).toBe(2); // still valid past its first 3 s

      // Stop while the next renewal is in flight (held for 300 ms): stop() must wait for it.
      const renew = tessera.renew.bind(tessera);
      let started!: () => void;
      const renewStarted = new Promise<void>((resolve) => (started = resolve));
      vi.spyOn(tessera, 'renew').mockImplementation(async (...args) => {
        started();
        await new Promise((resolve) => realSetTimeout(resolve, 300));
        return renew(...args);
      });
      await renewStarted;
      const before = renewals.length;
      await renewer.stop();
      expect(renewals.length).toBe(before + 1);
      await expect(renewer.done).resolves.toEqual({ reason: 'stopped' });
      expect(timers.length).toBeGreaterThanOrEqual(3);
      expect(timers.filter((timer) => !(timer as unknown as { _destroyed: boolean })._destroyed)).toEqual([]);

      const count = renewals.length;
      await new Promise((resolve) => realSetTimeout(resolve, 2_000));
      expect(renewals.length).toBe(count);
      await tessera.revoke(lease.id);
    } finally {
      spy.mockRestore();
    }
  });

  it('autoRenew stops and reports when the max TTL is reached', async () => {
    const tessera = await agent('sdk-max@test.local');
    const lease = await tessera.lease(BACKEND, { role: 'short', ttl: '3s' });
    const renewals: Renewal[] = [];
    const onStop = vi.fn();
    const end = await tessera.autoRenew(lease, { renewBefore: 0.5, onRenew: (r) => renewals.push(r), onStop }).done;
    expect(end.reason).toBe('not_renewable');
    expect(onStop).toHaveBeenCalledExactlyOnceWith(end);
    expect(renewals.length).toBeGreaterThanOrEqual(2);
    const last = (end as Extract<AutoRenewEnd, { reason: 'not_renewable' }>).expiresAt.getTime();
    expect(last).toBeLessThanOrEqual(lease.issuedAt.getTime() + 10_000);
    expect(last).toBeGreaterThan(lease.issuedAt.getTime() + 7_000);
  }, 20_000);

  it('autoRenew stops and reports when the lease is revoked', async () => {
    const tessera = await agent('sdk-lease-revoked@test.local');
    const lease = await tessera.lease(BACKEND, { role: 'short', ttl: 3 });
    const onError = vi.fn();
    const renewer = tessera.autoRenew(lease, { onError });
    await broker.admin.request('POST', '/v1/admin/leases/revoke', { identity: 'sdk-lease-revoked@test.local', reason: 'test' });
    const end = await renewer.done;
    expect(end).toMatchObject({ reason: 'failed', error: { status: 409, code: 'lease_inactive' } });
    expect(onError).toHaveBeenCalledExactlyOnceWith(expect.objectContaining({ code: 'lease_inactive' }));
  });

  it('autoRenew stops and reports when the identity is revoked', async () => {
    const address = 'sdk-identity-revoked@test.local';
    const tessera = await agent(address);
    const lease = await tessera.lease<PostgresCredential>(BACKEND, { role: 'short', ttl: 3 });
    const onError = vi.fn();
    const renewer = tessera.autoRenew(lease, { onError });
    await broker.admin.request('POST', `/v1/admin/identities/${encodeURIComponent(address)}/revoke`, { reason: 'compromised' });
    const end = await renewer.done;
    expect(end.reason).toBe('failed');
    const error = (end as Extract<AutoRenewEnd, { reason: 'failed' }>).error;
    expect(error).toBeInstanceOf(BrokerRequestError);
    // Either the proof is refused (identity revoked) or the lease went with the identity.
    expect(['identity_revoked', 'lease_inactive']).toContain((error as BrokerRequestError).code);
    expect(onError).toHaveBeenCalledOnce();
    // Revoking the identity revoked its leases too.
    await expect(readAs(lease.credential)).rejects.toThrow();
  });
});
