import type { Reporter, TestModule } from 'vitest/node';

/** Ends the run with the plain `N passed, N failed, N skipped` line CI reads in any language. */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const count = (state: 'passed' | 'failed' | 'skipped') => testModules.reduce((n, module) => n + [...module.children.allTests(state)].length, 0);
    // A file that fails before its tests run (a failing beforeAll, an import error) fails no test itself.
    const brokenFiles = testModules.filter((module) => module.state() === 'failed' && [...module.children.allTests('failed')].length === 0).length;
    process.stdout.write(`\n${count('passed')} passed, ${count('failed') + brokenFiles} failed, ${count('skipped')} skipped\n`);
  }
}
