import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import LongestFirstSequencer from './test/support/sequencer.js';

const sdkSource = (path: string) => fileURLToPath(new URL(`./packages/sdk/src/${path}`, import.meta.url));

export default defineConfig({
  // The SDK package from source, as tsconfig's "tessera-source" condition does for tsc: tests
  // need no build of it (the CLI tests, which run the compiled CLI, build it).
  resolve: {
    alias: [
      { find: /^@tessera-broker\/sdk$/, replacement: sdkSource('index.ts') },
      { find: /^@tessera-broker\/sdk\/(wire|signers)$/, replacement: sdkSource('$1/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Suites share one PostgreSQL server and spawn brokers; two cores do not gain from more forks.
    maxWorkers: 2,
    // The longest files start first (test/support/sequencer.ts): no long file runs alone at the end.
    sequence: { sequencer: LongestFirstSequencer },
  },
});
