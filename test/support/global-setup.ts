/** Vitest globalSetup: one PostgreSQL cluster shared by the whole run; see test/support/postgres.ts. */
import type { TestProject } from 'vitest/node';
import { startPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser DSN of the shared cluster; tests call createTestDatabase() on it. */
    postgresUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startPostgres();
  project.provide('postgresUrl', cluster.url);
  return () => cluster.destroy();
}
