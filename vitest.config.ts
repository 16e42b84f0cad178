import { defineConfig } from 'vitest/config';
import LongestFirstSequencer from './test/support/sequencer.js';

export default defineConfig({
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
