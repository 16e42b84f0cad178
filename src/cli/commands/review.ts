import type { Command } from 'commander';
import { output } from '../context.js';
import { REVIEWER_KEY_FLAGS, REVIEWER_KEY_HELP, reviewerRequest } from '../review-client.js';

/** `tessera review open`: the reviewer's CLI signs for a one-time login link to the review page. */
export function registerReviewCommands(program: Command): void {
  const review = program.command('review').description('the read-only security review page (reviewers and admins)');

  review
    .command('open')
    .description('print a one-time login link to the review page at /ui (open it within a minute)')
    .option(REVIEWER_KEY_FLAGS, REVIEWER_KEY_HELP)
    .option('--json', 'print JSON')
    .action(async (options: { key?: string; json?: boolean }, command: Command) => {
      const link = await reviewerRequest<{ login_url: string; expires_at: string }>(command, options.key, 'POST', '/v1/review/sessions', {});
      output(options.json, link, () => `${link.login_url}\n(one use; open it before ${link.expires_at})`);
    });
}
