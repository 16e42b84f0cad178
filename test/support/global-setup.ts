/**
 * Vitest globalSetup, run once per run: compiles dist/ for the suites that spawn the real CLI
 * (building per file would race), and starts one PostgreSQL cluster shared by the whole run.
 */
import type { TestProject } from 'vitest/node';
import { buildCli } from './cli.js';
import { startPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser DSN of the shared cluster; tests call createTestDatabase() on it. */
    postgresUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [cluster] = await Promise.all([startPostgres(), buildCli()]);
  project.provide('postgresUrl', cluster.url);
  return () => cluster.destroy();
}
