import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerClient } from '@tessera-broker/sdk';
import { rotateIdentityKey } from '../../provisioner/provision.js';
import { systemClock } from '../../src/clock.js';
import { eventually, TestAgent } from '../support/lease-env.js';
import { type ReplicaSet, startReplicas } from '../support/replicas.js';

/** Issue 13 §2: key changes reach every replica through the change feed, as identity status does. */
describe('key rotation across two replicas on one PostgreSQL database', () => {
  let set: ReplicaSet;
  let admin: BrokerClient;
  beforeAll(async () => {
    set = await startReplicas(2);
    admin = await BrokerClient.connect(set.publicUrl, await set.keyStores.signer(set.prepared.config.adminKeyUri!));
  }, 180_000);
  afterAll(() => set?.close());

  it('a replica that cached the old key refuses it (grace 0) and accepts the new one after a rotation on another replica', async () => {
    const agent = await set.enroll('rotating@acme.local');
    const onReplica1 = agent.via(set.urls[1]!);
    await onReplica1.expect(200, 'GET', '/v1/whoami'); // cached there with its first key
    const rotated = await rotateIdentityKey(admin, set.keyStores, agent.address, 0);
    const renewed = (await TestAgent.create(set.publicUrl, await set.keyStores.signer(rotated.key.key_uri), agent.address, systemClock)).via(set.urls[1]!);
    const reply = await eventually(async () => {
      const answer = await onReplica1.send('GET', '/v1/whoami');
      if (answer.status === 200) throw new Error('replica 1 still accepts the rotated-away key');
      return answer;
    }, 10_000, 0);
    expect(reply).toMatchObject({ status: 401, body: { error: 'key_retired' } });
    expect(await renewed.expect<{ identity_id: string }>(200, 'GET', '/v1/whoami')).toMatchObject({ identity_id: agent.identityId });
  });

  it('every replica publishes and signs with a new authority key', async () => {
    const jwksOn = async (url: string) => ((await (await fetch(`${url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map((key) => key.kid);
    const before = await jwksOn(set.urls[1]!);
    const rotated = await set.admin.via(set.urls[0]!).expect<{ kid: string; previous_kid: string }>(200, 'POST', '/v1/admin/authority/rotate', {});
    expect(rotated.previous_kid).toBe(before[0]);
    await eventually(async () => expect(await jwksOn(set.urls[1]!)).toEqual([rotated.kid, rotated.previous_kid]), 10_000, 0);
    const agent = await set.enroll('credential@acme.local');
    const { credential } = await agent.via(set.urls[1]!).expect<{ credential: string }>(200, 'POST', '/v1/credentials');
    expect(JSON.parse(Buffer.from(credential.split('.')[0]!, 'base64url').toString())).toMatchObject({ kid: rotated.kid });
  });
});
