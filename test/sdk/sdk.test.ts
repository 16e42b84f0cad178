/**
 * The SDK against a real broker (SoftHSM2 keys, SQLite) leasing real roles on the shared
 * PostgreSQL server: credentials are checked by logging in with the official `pg` client.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { type AutoRenewEnd, BrokerRequestError, createClient, isPostgresCredential, type PostgresCredential, type Renewal, type TesseraClient } from '@tessera-broker/sdk';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { ManualTimers } from '../support/clock.js';
import { createTestDatabase, withClient } from '../support/postgres.js';

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

  /** A provisioned, enrolled agent with grants: `reader` (max 1 h) and `short` (30 s default, 60 s max). */
  async function agent(address: string): Promise<TesseraClient> {
    const provisioned = await broker.provision(address);
    await (await broker.clientFor(provisioned.key_uri)).request('POST', '/v1/enroll', { ticket: provisioned.ticket });
    for (const [role, max, def] of [['reader', 3600, 300], ['short', 60, 30]] as const) {
      await broker.admin.request('POST', '/v1/admin/grants', { subject: address, backend: BACKEND, role, max_ttl_seconds: max, default_ttl_seconds: def });
    }
    // The documented path: a key URI, its token's module and PIN given as options (or TESSERA_PKCS11_*).
    const { module, pin } = broker.config.pkcs11;
    const client = await createClient({ broker: broker.url, key: provisioned.key_uri, pkcs11: { module, pin } });
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

  // autoRenew runs on ManualTimers: a renewal runs when the test fires it, never late on a busy
  // machine, and the broker's clock is moved instead of waiting. Leases last tens of seconds, so
  // the real time a step takes cannot expire them.
  const timersFor = () => new ManualTimers(broker.clock);
  /** Fires the armed renewal and waits until `settled` holds (a renewal is a signed HTTP request). */
  const fireAndWait = async (timers: ManualTimers, settled: () => void) => {
    timers.fire();
    await vi.waitFor(settled, { timeout: 30_000, interval: 20 });
  };

  it('autoRenew renews ahead of expiry, and stop() awaits the renewal in flight and leaves no timer', async () => {
    const tessera = await agent('sdk-renewer@test.local');
    const timers = timersFor();
    const lease = await tessera.lease<PostgresCredential>(BACKEND, { role: 'reader', ttl: 60 });
    const renewals: Renewal[] = [];
    const renewer = tessera.autoRenew(lease, { renewBefore: 0.5, onRenew: (renewal) => renewals.push(renewal), timers });
    // Half the 60 s TTL before expiry: ~30 s from now.
    expect(timers.delays).toHaveLength(1);
    expect(timers.delays[0]).toBeGreaterThan(25_000);
    expect(timers.delays[0]).toBeLessThanOrEqual(30_000);

    // Broker time moves 10 s per renewal (proofs allow ±60 s), so each one extends the lease.
    broker.clock.advance(10_000);
    await fireAndWait(timers, () => expect(renewals).toHaveLength(1));
    broker.clock.advance(10_000);
    await fireAndWait(timers, () => expect(renewals).toHaveLength(2));
    expect(renewals[0]!.expiresAt.getTime()).toBeGreaterThan(lease.expiresAt.getTime());
    expect(renewals[1]!.expiresAt.getTime()).toBeGreaterThan(renewals[0]!.expiresAt.getTime());
    // Each renewal re-armed the timer for half a TTL before the new expiry.
    expect(timers.delays).toHaveLength(3);
    // The login's VALID UNTIL moved with the renewal, and it still logs in.
    const validUntil = await withClient(database.url, async (client) =>
      (await client.query<{ v: Date }>('SELECT rolvaliduntil AS v FROM pg_roles WHERE rolname = $1', [lease.credential.username])).rows[0]!.v,
    );
    expect(Math.abs(validUntil.getTime() - renewals[1]!.expiresAt.getTime())).toBeLessThan(1_000);
    expect(await readAs(lease.credential)).toBe(2);

    // Stop while the next renewal is in flight (held until released): stop() must wait for it.
    const renew = tessera.renew.bind(tessera);
    let started!: () => void;
    let release!: () => void;
    const renewStarted = new Promise<void>((resolve) => (started = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    vi.spyOn(tessera, 'renew').mockImplementation(async (...args) => {
      started();
      await gate;
      return renew(...args);
    });
    broker.clock.advance(10_000);
    timers.fire();
    await renewStarted;
    const before = renewals.length;
    let stopped = false;
    const stopping = renewer.stop().then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(renewals.length).toBe(before + 1);
    await expect(renewer.done).resolves.toEqual({ reason: 'stopped' });
    // Nothing is left armed: no renewal can follow.
    expect(timers.pending).toBe(0);
    broker.clock.release();
    await tessera.revoke(lease.id);
  });

  it('autoRenew on its default (real) timers renews, and stops', async () => {
    const tessera = await agent('sdk-real-timers@test.local');
    const lease = await tessera.lease(BACKEND, { role: 'reader', ttl: 60 });
    const renewals: Renewal[] = [];
    // Due ~1 s from now; the lease lasts 60 s, so a late timer on a busy machine is still in time.
    const renewer = tessera.autoRenew(lease, { renewBefore: 59, onRenew: (renewal) => renewals.push(renewal) });
    await vi.waitFor(() => expect(renewals.length).toBeGreaterThanOrEqual(1), { timeout: 30_000, interval: 50 });
    expect(renewals[0]!.expiresAt.getTime()).toBeGreaterThan(lease.expiresAt.getTime());
    await renewer.stop();
    await expect(renewer.done).resolves.toEqual({ reason: 'stopped' });
    await tessera.revoke(lease.id);
  });

  it('autoRenew stops and reports when the max TTL is reached', async () => {
    const tessera = await agent('sdk-max@test.local');
    const timers = timersFor();
    // The short grant: 30 s default, 60 s max.
    const lease = await tessera.lease(BACKEND, { role: 'short' });
    expect(lease.expiresAt.getTime() - lease.issuedAt.getTime()).toBe(30_000);
    const renewals: Renewal[] = [];
    const onStop = vi.fn();
    const renewer = tessera.autoRenew(lease, { renewBefore: 0.5, onRenew: (r) => renewals.push(r), onStop, timers });
    let ended = false;
    void renewer.done.then(() => (ended = true));
    try {
      // Renew every 10 s of broker time: +30 s each, until the 60 s cap stops extending it.
      for (let step = 1; !ended; step++) {
        expect(step, 'renewals should stop at the max TTL').toBeLessThanOrEqual(5);
        broker.clock.advance(10_000);
        await fireAndWait(timers, () => expect(ended || renewals.length === step).toBe(true));
      }
    } finally {
      broker.clock.release();
    }
    const end = await renewer.done;
    expect(end.reason).toBe('not_renewable');
    expect(onStop).toHaveBeenCalledExactlyOnceWith(end);
    expect(renewals.length).toBeGreaterThanOrEqual(3);
    const last = (end as Extract<AutoRenewEnd, { reason: 'not_renewable' }>).expiresAt.getTime();
    expect(last).toBeLessThanOrEqual(lease.issuedAt.getTime() + 60_000);
    expect(last).toBeGreaterThan(lease.issuedAt.getTime() + 50_000);
    expect(timers.pending).toBe(0);
  });

  it('autoRenew stops and reports when the lease is revoked', async () => {
    const tessera = await agent('sdk-lease-revoked@test.local');
    const timers = timersFor();
    const lease = await tessera.lease(BACKEND, { role: 'short' });
    const onError = vi.fn();
    const renewer = tessera.autoRenew(lease, { onError, timers });
    await broker.admin.request('POST', '/v1/admin/leases/revoke', { identity: 'sdk-lease-revoked@test.local', reason: 'test' });
    timers.fire();
    const end = await renewer.done;
    expect(end).toMatchObject({ reason: 'failed', error: { status: 409, code: 'lease_inactive' } });
    expect(onError).toHaveBeenCalledExactlyOnceWith(expect.objectContaining({ code: 'lease_inactive' }));
    expect(timers.pending).toBe(0);
  });

  it('autoRenew stops and reports when the identity is revoked', async () => {
    const address = 'sdk-identity-revoked@test.local';
    const tessera = await agent(address);
    const timers = timersFor();
    const lease = await tessera.lease<PostgresCredential>(BACKEND, { role: 'short' });
    const onError = vi.fn();
    const renewer = tessera.autoRenew(lease, { onError, timers });
    await broker.admin.request('POST', `/v1/admin/identities/${encodeURIComponent(address)}/revoke`, { reason: 'compromised' });
    timers.fire();
    const end = await renewer.done;
    expect(end.reason).toBe('failed');
    const error = (end as Extract<AutoRenewEnd, { reason: 'failed' }>).error;
    expect(error).toBeInstanceOf(BrokerRequestError);
    // The renewal's proof is refused: the identity is revoked.
    expect((error as BrokerRequestError).code).toBe('identity_revoked');
    expect(onError).toHaveBeenCalledOnce();
    // Revoking the identity revoked its leases too.
    await expect(readAs(lease.credential)).rejects.toThrow();
  });
});

describe('SDK with a KMS key', () => {
  let broker: TestBroker;

  beforeAll(async () => {
    // AWS_* for the local KMS are set in this process, as for any agent using the AWS SDK chain.
    broker = await startTestBroker({ keystore: 'kms' });
  });

  afterAll(async () => {
    await broker?.close();
  });

  it('signs with an aws-kms: key URI, loading the AWS SDK only for it', async () => {
    const provisioned = await broker.provision('sdk-kms@test.local');
    expect(provisioned.key_uri).toMatch(/^aws-kms:/);
    await (await broker.clientFor(provisioned.key_uri)).request('POST', '/v1/enroll', { ticket: provisioned.ticket });
    const tessera = await createClient({ broker: broker.url, key: provisioned.key_uri });
    try {
      expect(await tessera.whoami()).toMatchObject({ address: 'sdk-kms@test.local', status: 'active' });
    } finally {
      await tessera.close();
    }
  });

  it('refuses a key URI of no known key store, naming the forms it takes', async () => {
    await expect(rejection(createClient({ broker: broker.url, key: 'file:/tmp/agent.key' }))).resolves.toMatchObject({
      code: 'config_invalid',
      message: expect.stringContaining('expected pkcs11:token=...;object=... or aws-kms:<key id>'),
    });
  });
});
