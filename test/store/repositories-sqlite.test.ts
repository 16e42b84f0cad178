import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/database.js';
import { describeRepositoryContract } from './repositories.contract.js';

describeRepositoryContract('SQLite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-repos-'));
  const store = await openStore(`sqlite:${join(dir, 'tessera.db')}`);
  return {
    store,
    other: store,
    async close() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
