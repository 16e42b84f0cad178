/**
 * Starts the longest test files first, so that with two workers no long file starts last and
 * runs alone (wall time ≈ max(sum / 2, longest) instead of that plus a tail). The rest follow in
 * vitest's default order (failed first, then by cached duration or size).
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Longest first, by measured duration on two busy cores; a file missing here just runs later. */
const LONGEST_FIRST = [
  'test/leases/twenty-thousand-leases.test.ts',
  'test/cli/quickstart.test.ts',
  'test/cli/lease-cli.test.ts',
  'test/replicas/replicas.test.ts',
  'test/leases/lifecycle.test.ts',
  'test/cli/serve-ports.test.ts',
  'test/review/review-api.test.ts',
  'test/cli/http-grant-cli.test.ts',
  'test/leases/mass-expiry.test.ts',
  'test/audit/chain.test.ts',
  'test/leases/least-privilege.test.ts',
];

export default class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rest = await super.sort(files.filter((file) => rank(file) < 0));
    const first = files.filter((file) => rank(file) >= 0).sort((a, b) => rank(a) - rank(b));
    return [...first, ...rest];
  }
}

function rank(file: TestSpecification): number {
  const path = file.moduleId.replaceAll('\\', '/');
  return LONGEST_FIRST.findIndex((suffix) => path.endsWith(`/${suffix}`));
}
