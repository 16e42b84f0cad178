/**
 * Session keys across replicas on one PostgreSQL database: a session registered on one replica is
 * accepted by the others, and revoking its identity on one ends it on every replica (change feed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/lease-env.js';
import { type ReplicaSet, startReplicas } from '../support/replicas.js';

describe('session keys on two replicas', () => {
  let set: ReplicaSet;

  beforeAll(async () => {
    set = await startReplicas(2);
  }, 180_000);
  afterAll(async () => {
    await set?.close();
  });

  it('a session registered on replica A works on B; revoking the identity on A ends it on B', async () => {
    const agent = await set.enroll('session-replicas@acme.local');
    const [a, b] = set.urls as [string, string];
    const { reply, session } = await agent.via(a).startSession({ generation: Date.now() });
    expect(reply.status).toBe(201);
    // Both replicas now hold the session (and its identity) in their caches.
    await agent.withSession(session).via(a).expect(200, 'GET', '/v1/whoami');
    await agent.withSession(session).via(b).expect(200, 'GET', '/v1/whoami');

    await set.admin.via(a).expect(200, 'POST', `/v1/admin/identities/${agent.address}/revoke`, { reason: 'test' });
    expect(await agent.withSession(session).via(a).send('GET', '/v1/whoami')).toMatchObject({ status: 401, body: { error: 'session_revoked' } });
    const onB = await eventually(async () => {
      const answer = await agent.withSession(session).via(b).send('GET', '/v1/whoami');
      if (answer.status === 200) throw new Error('replica B still accepts the session of a revoked identity');
      return answer;
    }, 10_000, 0);
    expect(onB).toMatchObject({ status: 401, body: { error: 'session_revoked' } });
    const [ended] = (await set.db.query<{ revoked_at: number | null }>('SELECT revoked_at FROM sessions WHERE id = $1', [session.id])).rows;
    expect(ended?.revoked_at).not.toBeNull();
  });
});
