import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { groupNameFor } from '../../src/backends/postgres-backend.js';
import { runCli } from '../support/cli.js';
import { eventually, leaseRolesOf, percentile, type TestAgent, withClient } from '../support/lease-env.js';
import { createTestDatabase } from '../support/postgres.js';
import { type ReplicaSet, startReplicas } from '../support/replicas.js';

const REPLICAS = 3;
const REVOKED_IDENTITIES = 12;
/** Short, so that the survivors of a SIGKILL reconcile its intents within the test. */
const PENDING_GRACE_SECONDS = 10;

describe('three replicas on one PostgreSQL database', () => {
  let set: ReplicaSet;
  let upstream: { url: string; drop(): Promise<void> };
  let agent: TestAgent;

  beforeAll(async () => {
    [set, upstream] = await Promise.all([
      startReplicas(REPLICAS, { TESSERA_LEASE_PENDING_GRACE: `${PENDING_GRACE_SECONDS}s` }),
      createTestDatabase(inject('postgresUrl')),
    ]);
    await set.admin.expect(201, 'POST', '/v1/admin/backends', { name: 'db', type: 'postgres', connection_url: upstream.url });
    agent = await set.enroll('worker@acme.local');
    await set.admin.expect(201, 'POST', '/v1/admin/grants', { subject: agent.address, backend: 'db', role: 'readonly', max_ttl_seconds: 600 });
  }, 180_000);
  afterAll(async () => {
    await set?.close();
    await upstream?.drop();
  });

  const on = (replica: number, who: TestAgent) => who.via(set.urls[replica]!);

  it('refuses a revoked identity on every replica: at once where it was revoked, within milliseconds elsewhere', async () => {
    const propagation: number[] = [];
    for (let i = 0; i < REVOKED_IDENTITIES; i++) {
      const victim = await set.enroll(`victim-${i}@acme.local`);
      // Every replica has the identity cached as active.
      for (let replica = 0; replica < REPLICAS; replica++) await on(replica, victim).expect(200, 'GET', '/v1/whoami');
      const revoking = i % REPLICAS;
      await on(revoking, set.admin).expect(200, 'POST', `/v1/admin/identities/${victim.address}/revoke`, { reason: 'test' });
      const revokedAt = performance.now();
      // Read-your-writes: the replica that revoked knows before it answers.
      expect(await on(revoking, victim).send('GET', '/v1/whoami')).toMatchObject({ status: 403, body: { error: 'identity_revoked' } });
      await Promise.all(
        [...Array(REPLICAS).keys()]
          .filter((replica) => replica !== revoking)
          .map(async (replica) => {
            const reply = await eventually(async () => {
              const answer = await on(replica, victim).send('GET', '/v1/whoami');
              if (answer.status === 200) throw new Error(`replica ${replica} still accepts a revoked identity`);
              return answer;
            }, 10_000, 0);
            propagation.push(performance.now() - revokedAt);
            expect(reply).toMatchObject({ status: 403, body: { error: 'identity_revoked' } });
          }),
      );
    }
    const sorted = propagation.sort((a, b) => a - b);
    console.log(
      `replicas: revocation refused on the other replicas after p50 ${percentile(sorted, 50).toFixed(1)} ms, ` +
        `p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms (${sorted.length} samples, from the revoke returning, request round trips included)`,
    );
    expect(sorted).toHaveLength(REVOKED_IDENTITIES * (REPLICAS - 1));
  }, 120_000);

  it('refuses a lease under a revoked grant on every replica, and grants again everywhere, though each replica cached its grants', async () => {
    const holder = await set.enroll('granted@acme.local');
    const lease = (replica: number) => on(replica, holder).send('POST', '/v1/leases', { backend: 'db', role: 'readonly', ttl_seconds: 60 });
    const everyReplica = [...Array(REPLICAS).keys()];
    /** Each replica's answer, once every replica gives `status` (the others learn through the change feed). */
    const settled = (status: number) =>
      Promise.all(everyReplica.map((replica) => eventually(async () => {
        const answer = await lease(replica);
        if (answer.status !== status) throw new Error(`replica ${replica} answered ${answer.status}, not ${status}`);
        return answer;
      }, 10_000, 0)));

    const { grant_id } = await on(0, set.admin).expect<{ grant_id: string }>(201, 'POST', '/v1/admin/grants', { subject: holder.address, backend: 'db', role: 'readonly', max_ttl_seconds: 600 });
    for (const replica of everyReplica) expect((await lease(replica)).status).toBe(201);
    await on(1, set.admin).expect(200, 'DELETE', `/v1/admin/grants/${grant_id}`);
    // Read-your-writes where it was revoked; every other replica drops its cached grants.
    expect(await lease(1)).toMatchObject({ status: 403, body: { error: 'no_grant' } });
    for (const answer of await settled(403)) expect(answer.body).toMatchObject({ error: 'no_grant' });

    // Every replica has now cached "no grant": a new grant must reach them all the same.
    await on(2, set.admin).expect(201, 'POST', '/v1/admin/grants', { subject: holder.address, backend: 'db', role: 'readonly', max_ttl_seconds: 600 });
    expect((await lease(2)).status).toBe(201);
    await settled(201);
    // Its logins go, so the later tests start from an upstream without any.
    await set.admin.expect(200, 'POST', `/v1/admin/identities/${holder.address}/revoke`, { reason: 'test done' });
  }, 60_000);

  it('refuses a proof on every replica once one replica accepted it', async () => {
    const proof = await agent.proof('GET', '/v1/whoami');
    expect((await on(0, agent).send('GET', '/v1/whoami', undefined, proof)).status).toBe(200);
    for (const replica of [1, 2]) {
      expect(await on(replica, agent).send('GET', '/v1/whoami', undefined, proof)).toMatchObject({ status: 401, body: { error: 'proof_replayed' } });
    }
    // The same proof at all three at once: exactly one accepts it.
    const racing = await agent.proof('GET', '/v1/whoami');
    const replies = await Promise.all([0, 1, 2].map((replica) => on(replica, agent).send('GET', '/v1/whoami', undefined, racing)));
    expect(replies.map((reply) => reply.status).sort()).toEqual([200, 401, 401]);
    expect(replies.filter((reply) => reply.status === 401).map((reply) => reply.body.error)).toEqual(['proof_replayed', 'proof_replayed']);
  });

  it('expires each lease and reconciles each orphaned intent once, whichever replicas sweep, and leaves a young intent alone', async () => {
    const leases = await Promise.all([...Array(9).keys()].map((i) => on(i % REPLICAS, agent).lease('db', 'readonly', 1)));
    // Intents of a broker that died mid-issue (older than the grace), with their role minted upstream,
    // and one of a broker issuing right now.
    const group = groupNameFor(new URL(upstream.url).pathname.slice(1), 'db', 'readonly');
    const orphans = [...Array(4).keys()].map(() => ({ id: `lse_orphan${randomBytes(8).toString('hex')}`, username: `tessera_readonly_${randomBytes(8).toString('hex')}` }));
    await withClient(upstream.url, async (client) => {
      for (const orphan of orphans) await client.query(`CREATE ROLE ${orphan.username} LOGIN IN ROLE ${group}`);
    });
    const now = Date.now();
    const intent = (id: string, username: string, issuedAt: number) =>
      set.db.query(
        `INSERT INTO leases (id, identity_id, backend, role, grant_id, state, revocation, issued_at, expires_at, max_expires_at)
         SELECT $1, identity_id, backend, role, grant_id, 'pending', $2, $3::bigint, $3::bigint + 600000, $3::bigint + 600000 FROM leases WHERE id = $4`,
        [id, JSON.stringify({ username, role: 'readonly', group }), issuedAt, leases[0]!.lease_id],
      );
    for (const orphan of orphans) await intent(orphan.id, orphan.username, now - 2 * PENDING_GRACE_SECONDS * 1000);
    const young = `lse_young${randomBytes(8).toString('hex')}`;
    await intent(young, `tessera_readonly_${randomBytes(8).toString('hex')}`, now + 60_000);

    const ids = [...leases.map((lease) => lease.lease_id), ...orphans.map((orphan) => orphan.id)];
    const states = await eventually(async () => {
      const { rows } = await set.db.query<{ id: string; state: string; revocation_reason: string | null }>('SELECT id, state, revocation_reason FROM leases WHERE id = ANY($1)', [ids]);
      expect(rows.filter((row) => row.state !== 'expired' && row.state !== 'revoked')).toEqual([]);
      return rows;
    }, 30_000, 200);
    expect(states.filter((row) => row.state === 'revoked').map((row) => row.revocation_reason)).toEqual(orphans.map(() => 'reconciled'));
    const { rows: events } = await set.db.query<{ lease_id: string; action: string; count: number }>(
      `SELECT details::json->>'lease_id' AS lease_id, action, count(*)::int AS count FROM audit_events
        WHERE action IN ('lease.expired', 'lease.reconciled', 'lease.revoked') AND details::json->>'lease_id' = ANY($1) GROUP BY 1, 2`,
      [ids],
    );
    expect(events.map((event) => event.count)).toEqual(ids.map(() => 1));
    expect(new Set(events.map((event) => event.lease_id))).toEqual(new Set(ids));
    expect(await leaseRolesOf(upstream.url, 'db')).toEqual([]);
    expect((await set.db.query('SELECT state FROM leases WHERE id = $1', [young])).rows).toEqual([{ state: 'pending' }]);
    await set.db.query('DELETE FROM leases WHERE id = $1', [young]); // fabricated; no broker will activate it
  }, 90_000);

  it('loses nothing and leaves no orphaned login when a replica is SIGKILLed mid-burst; the audit chain verifies', async () => {
    const KILLED = 2;
    const BURST = 60;
    let granted = 0;
    let killNow!: () => void;
    const enough = new Promise<void>((resolve) => (killNow = resolve));
    const outcomes = Array.from({ length: BURST }, (_, i) =>
      on(i % REPLICAS, agent)
        .send<{ lease_id: string }>('POST', '/v1/leases', { backend: 'db', role: 'readonly', ttl_seconds: 300 })
        .then(
          (reply) => {
            if (reply.status === 201 && ++granted === 10) killNow();
            return reply;
          },
          () => undefined, // the killed replica's connections drop
        ),
    );
    await Promise.race([enough, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    await set.kill(KILLED);
    const replies = await Promise.all(outcomes);
    const acknowledged = replies.filter((reply) => reply?.status === 201).map((reply) => reply!.body.lease_id);

    // The survivors revoke the dead replica's intents once they are older than the grace.
    const leases = await eventually(async () => {
      const { rows } = await set.db.query<{ id: string; state: string; revocation: string; revocation_reason: string | null }>('SELECT id, state, revocation, revocation_reason FROM leases');
      expect(rows.filter((row) => row.state === 'pending' || row.state === 'revocation-pending')).toEqual([]);
      return rows;
    }, 60_000, 500);
    const active = leases.filter((lease) => lease.state === 'active');
    const reconciled = leases.filter((lease) => lease.state === 'revoked' && lease.revocation_reason === 'reconciled');
    console.log(
      `replicas: SIGKILL of replica ${KILLED} mid-burst: ${acknowledged.length}/${BURST} leases acknowledged, ` +
        `${active.length} active, ${reconciled.length} intents of the dead replica reconciled by the survivors`,
    );
    // Nothing acknowledged is lost; nothing upstream is held by no active lease.
    expect(acknowledged.filter((id) => !active.some((lease) => lease.id === id))).toEqual([]);
    const activeLogins = new Set(active.map((lease) => (JSON.parse(lease.revocation) as { username: string }).username));
    const logins = await leaseRolesOf(upstream.url, 'db');
    expect(logins.filter((login) => !activeLogins.has(login))).toEqual([]);
    expect([...activeLogins].filter((login) => !logins.includes(login))).toEqual([]);
    const { rows: grants } = await set.db.query<{ lease_id: string }>(`SELECT details::json->>'lease_id' AS lease_id FROM audit_events WHERE action = 'lease.granted'`);
    for (const id of acknowledged) expect(grants.filter((grant) => grant.lease_id === id)).toHaveLength(1);

    const verify = await runCli(['audit', 'verify'], { env: { ...set.prepared.env, TESSERA_URL: set.publicUrl } });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  }, 120_000);
});
