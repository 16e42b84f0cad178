import { randomUUID } from 'node:crypto';
import { expect, inject, it } from 'vitest';
import type { Identity } from '../../src/identity/identity.js';
import { openStore } from '../../src/store/database.js';
import { createTestDatabase } from '../support/postgres.js';
import { describeRepositoryContract } from './repositories.contract.js';

async function openPair() {
  const database = await createTestDatabase(inject('postgresUrl'));
  const store = await openStore(database.url);
  const other = await openStore(database.url);
  return {
    store,
    other,
    async close() {
      await other.close();
      await store.close();
      await database.drop();
    },
  };
}

describeRepositoryContract('PostgreSQL', openPair);

const agent = (): Identity => {
  const id = `kid-${randomUUID()}`;
  return {
    id, address: `${id}@acme.local`, role: 'agent', status: 'pending', publicKey: new Uint8Array(32), keyUri: 'memory:test', attributes: {},
    createdAt: 1, enrolledAt: null, revokedAt: null, revokedBy: null, revocationReason: null,
  };
};

it('changes by snapshot (PostgreSQL): a transaction that commits after a later one is read once, when it commits', async () => {
  const { store, other, close } = await openPair();
  try {
    const start = await store.repos.changes.currentSnapshot();
    const [early, late] = [agent(), agent()];
    let commitEarly!: () => void;
    const earlyWritten = new Promise<void>((written) => {
      // `early` takes the lower change id but commits last.
      void store.transaction(async (repos) => {
        await repos.identities.insert(early, null);
        written();
        await new Promise<void>((resolve) => (commitEarly = resolve));
      });
    });
    await earlyWritten;
    await other.repos.identities.insert(late, null);
    const first = await store.repos.changes.changesSinceSnapshot(start);
    expect(first.changes).toEqual([{ kind: 'identity', key: late.id }]);
    commitEarly();
    await expect.poll(async () => (await store.repos.identities.findById(early.id))?.id).toBe(early.id);
    const second = await other.repos.changes.changesSinceSnapshot(first.snapshot);
    expect(second.changes).toEqual([{ kind: 'identity', key: early.id }]);
    expect((await store.repos.changes.changesSinceSnapshot(second.snapshot)).changes).toEqual([]);
  } finally {
    await close();
  }
});
