/**
 * `tessera run`'s supervisor in-process, against a real broker (SoftHSM2, SQLite) leasing real
 * roles on the shared PostgreSQL server, running real commands (sh, psql). Renewals and expiries run
 * on ManualTimers: a test about time fires them instead of waiting, and signals to tessera come
 * from an emitter. The compiled CLI end to end is test/cli/run-cli.test.ts.
 */
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { parseLeaseSpec } from '../../src/cli/run/lease-spec.js';
import { type RunOptions, runWithLeases } from '../../src/cli/run/supervisor.js';
import { createClient, type TesseraClient } from '@tessera-broker/sdk';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { ManualTimers, TestClock } from '../support/clock.js';
import { leaseRolesOf } from '../support/lease-env.js';
import { createTestDatabase } from '../support/postgres.js';

const ADDRESS = 'run-agent@test.local';

describe('tessera run (supervisor)', { timeout: 60_000 }, () => {
  let broker: TestBroker;
  let database: { url: string; drop(): Promise<void> };
  let client: TesseraClient;
  let dir: string;
  let step = 0;

  /** A fresh file path in the test's directory. */
  const file = (name: string) => join(dir, `${name}-${++step}`);
  /** Login roles of `backend` left in the upstream database: none once every lease is revoked. */
  const liveRoles = (backend: string) => leaseRolesOf(database.url, backend);
  const waitForFile = (path: string) => vi.waitFor(() => expect(existsSync(path)).toBe(true), { timeout: 30_000, interval: 20 });

  /** Waits for the file $1 to appear; gives up after a minute, so a failed test leaves no command behind. */
  const WAIT_FOR_STOP = 'i=0; while [ ! -e "$1" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done';

  /** A shell command that writes `ready`, then waits; SIGTERM makes it exit 42, `stop` exit 0. */
  const waiter = (ready: string, stop: string): Pick<RunOptions, 'command' | 'args'> => ({
    command: 'sh',
    args: ['-c', `trap "exit 42" TERM; touch "$2"; ${WAIT_FOR_STOP}`, 'sh', stop, ready],
  });

  function run(specs: string[], options: Partial<RunOptions> & Pick<RunOptions, 'command' | 'args'>) {
    const report: string[] = [];
    const signals = new EventEmitter();
    const status = runWithLeases(client, {
      leases: specs.map(parseLeaseSpec),
      cleanEnv: false,
      onLeaseLost: 'term',
      env: { PATH: process.env.PATH },
      report: (line) => report.push(line),
      signals,
      ...options,
    });
    return { status, report, signals };
  }

  beforeAll(async () => {
    broker = await startTestBroker();
    database = await createTestDatabase(inject('postgresUrl'));
    dir = await mkdtemp(join(tmpdir(), 'tessera-run-'));
    for (const name of ['orders', 'billing']) {
      await broker.admin.request('POST', '/v1/admin/backends', { name, type: 'postgres', connection_url: database.url });
    }
    const provisioned = await broker.provision(ADDRESS);
    await (await broker.clientFor(provisioned.key_uri)).request('POST', '/v1/enroll', { ticket: provisioned.ticket });
    for (const [backend, role, max] of [['orders', 'readonly', 3600], ['billing', 'readonly', 3600], ['orders', 'readwrite', 60]] as const) {
      await broker.admin.request('POST', '/v1/admin/grants', { subject: ADDRESS, backend, role, max_ttl_seconds: max, default_ttl_seconds: 60 });
    }
    const { module, pin } = broker.config.pkcs11;
    client = await createClient({ broker: broker.url, key: provisioned.key_uri, pkcs11: { module, pin } });
  });

  afterAll(async () => {
    await client?.close();
    await broker?.close();
    await database?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The admin revokes the agent's live leases, as an operator would mid-run. */
  const revokeAsAdmin = () => broker.admin.request('POST', '/v1/admin/leases/revoke', { identity: ADDRESS, reason: 'test: lease lost' });

  it('gives the command working credentials, renews two thirds into the TTL, and revokes on exit with its status', async () => {
    const out = file('count');
    const timers = new ManualTimers(broker.clock);
    broker.clock.freeze(); // delays are then exact; proofs stay fresh (the clock moves 40 s at most)
    try {
      const ready = file('ready');
      const stop = file('stop');
      const { status } = run(['orders:readonly:60'], {
        command: 'sh',
        args: ['-c', `psql -XtAc "SELECT current_user" > "$2" && touch "$3" && ${WAIT_FOR_STOP}; exit 7`, 'sh', stop, out, ready],
        timers,
      });
      await waitForFile(ready);
      const user = readFileSync(out, 'utf8').trim();
      expect(await liveRoles('orders')).toEqual([user]);
      expect(timers.delays).toEqual([40_000]);

      broker.clock.advance(40_000);
      timers.fire();
      await vi.waitFor(() => expect(timers.delays).toHaveLength(2), { timeout: 30_000, interval: 20 });
      expect(timers.delays[1]).toBe(40_000); // renewed to 60 s from the new now, re-armed at 2/3 again

      writeFileSync(stop, '');
      expect(await status).toBe(7);
      expect(await liveRoles('orders')).toEqual([]);
      expect(timers.pending).toBe(0);
    } finally {
      broker.clock.release();
    }
  });

  it('a lease that cannot be renewed is reported and the command gets SIGTERM', async () => {
    const timers = new ManualTimers(broker.clock);
    const ready = file('ready');
    const { status, report } = run(['orders:readonly'], { ...waiter(ready, file('stop')), timers });
    await waitForFile(ready);
    await revokeAsAdmin();
    timers.fire();
    expect(await status).toBe(42);
    expect(report).toEqual([
      expect.stringMatching(/^renewing lease lse_\S+ \(orders:readonly\) failed: lease_inactive: /),
      expect.stringMatching(/^lease lse_\S+ \(orders:readonly\) is lost: it could not be renewed: lease_inactive: .*; sending SIGTERM to the command$/),
    ]);
  });

  it('--on-lease-lost ignore: the lost lease is reported and the command keeps running', async () => {
    const timers = new ManualTimers(broker.clock);
    const [ready, stop] = [file('ready'), file('stop')];
    const { status, report } = run(['orders:readonly'], { ...waiter(ready, stop), timers, onLeaseLost: 'ignore' });
    await waitForFile(ready);
    await revokeAsAdmin();
    timers.fire();
    await vi.waitFor(() => expect(report.at(-1)).toMatch(/is lost: .*; the command keeps running \(--on-lease-lost ignore\)$/), { timeout: 30_000, interval: 20 });
    writeFileSync(stop, '');
    expect(await status).toBe(0);
  });

  it("a lease at its grant's max TTL is reported at once, and lost (SIGTERM) when it expires", async () => {
    // Timer time apart from the broker's: moving it past the expiry keeps the broker's proofs fresh.
    const clock = new TestClock();
    const timers = new ManualTimers(clock);
    const ready = file('ready');
    const { status, report } = run(['orders:readwrite:60'], { ...waiter(ready, file('stop')), timers });
    await waitForFile(ready);
    expect(report).toEqual([expect.stringMatching(/^lease lse_\S+ \(orders:readwrite\) cannot be renewed past \S+ \(its grant's max TTL\)$/)]);
    expect(timers.delays).toHaveLength(1);
    expect(timers.delays[0]).toBeGreaterThan(50_000);
    expect(timers.delays[0]).toBeLessThanOrEqual(60_000);

    clock.advance(60_000);
    timers.fire();
    expect(await status).toBe(42);
    expect(report[1]).toMatch(/^lease lse_\S+ \(orders:readwrite\) is lost: it expired at \S+; sending SIGTERM to the command$/);
    expect(await liveRoles('orders')).toEqual([]);
  });

  it("signals to tessera reach the command's whole process group; killed by signal n -> 128+n", async () => {
    const pidFile = file('pid');
    const { status, signals } = run(['orders:readonly'], { command: 'sh', args: ['-c', 'sleep 60 & echo $! > "$1.tmp" && mv "$1.tmp" "$1"; wait', 'sh', pidFile] });
    await waitForFile(pidFile);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    signals.emit('SIGTERM');
    expect(await status).toBe(128 + 15);
    // The background sleep got it too (its own shell did not pass it on).
    await vi.waitFor(() => expect(() => process.kill(grandchild, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' })), { timeout: 30_000, interval: 20 });
    expect(await liveRoles('orders')).toEqual([]);
  });

  it.each([
    ['SIGINT', 2],
    ['SIGHUP', 1],
    ['SIGQUIT', 3],
  ] as const)('%s to tessera reaches the command', async (signal, number) => {
    const ready = file('ready');
    const { status, signals } = run(['orders:readonly'], { command: 'sh', args: ['-c', 'touch "$1"; exec sleep 60', 'sh', ready] });
    await waitForFile(ready);
    signals.emit(signal);
    expect(await status).toBe(128 + number);
  });

  it('a signal before the command started: it is not started, the leases are revoked', async () => {
    const ready = file('ready');
    const { status, signals } = run(['orders:readonly', 'B=billing:readonly'], waiter(ready, file('stop')));
    signals.emit('SIGINT'); // while the leases are being issued
    expect(await status).toBe(128 + 2);
    expect(existsSync(ready)).toBe(false);
    expect([...(await liveRoles('orders')), ...(await liveRoles('billing'))]).toEqual([]);
  });

  it('a refused lease: the others are revoked and the command is not started', async () => {
    const ready = file('ready');
    await expect(run(['orders:readonly', 'billing:readwrite'], waiter(ready, file('stop'))).status).rejects.toMatchObject({ code: 'no_grant' });
    expect(existsSync(ready)).toBe(false);
    expect(await liveRoles('orders')).toEqual([]);
  });

  it('two leases that set the same variables are refused, and both revoked', async () => {
    const ready = file('ready');
    await expect(run(['orders:readonly', 'billing:readonly'], waiter(ready, file('stop'))).status).rejects.toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(/^--lease orders:readonly and --lease billing:readonly both set DATABASE_URL; give each its own name/),
    });
    expect(existsSync(ready)).toBe(false);
    expect([...(await liveRoles('orders')), ...(await liveRoles('billing'))]).toEqual([]);
  });

  it('a command that cannot be found exits 127, with its leases revoked', async () => {
    const { status, report } = run(['orders:readonly'], { command: 'no-such-command-tessera', args: [] });
    expect(await status).toBe(127);
    expect(report).toEqual([expect.stringMatching(/^cannot run no-such-command-tessera: .*ENOENT/)]);
    expect(await liveRoles('orders')).toEqual([]);
  });
});
