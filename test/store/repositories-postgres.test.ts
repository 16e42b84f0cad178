import { inject } from 'vitest';
import { openStore } from '../../src/store/database.js';
import { createTestDatabase } from '../support/postgres.js';
import { describeRepositoryContract } from './repositories.contract.js';

describeRepositoryContract('PostgreSQL', async () => {
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
});
