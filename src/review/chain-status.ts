import type { JSONWebKeySet } from 'jose';
import { exportRecords } from '../audit/export.js';
import { verifyAuditLog, type VerifyProblem } from '../audit/verify.js';
import type { Repositories } from '../store/repositories/index.js';

/** Verifying this many of the newest events keeps a page load well under a second. */
export const CHAIN_STATUS_WINDOW = 20_000;

export interface ChainStatus {
  readonly ok: boolean;
  /** the seq range verified: the newest events, up to the window */
  readonly from: number;
  readonly to: number;
  readonly head: { readonly seq: number; readonly hash: string };
  readonly events: number;
  readonly checkpoints: number;
  readonly proofs: number;
  /** the newest signed checkpoint, whether or not it fell inside the window */
  readonly last_checkpoint: { readonly seq: number; readonly at: string } | null;
  readonly problem: VerifyProblem | null;
  readonly checked_at: string;
}

/**
 * Runs the same verification as `tessera audit verify` over the newest events, server-side and
 * bounded: hash links, stored proofs and the checkpoints in range against the broker's own JWKS.
 * The full log is for `tessera audit verify`.
 */
export async function chainStatus(repos: Repositories, options: { issuer: string; jwks: JSONWebKeySet; now: number; window?: number }): Promise<ChainStatus> {
  const head = await repos.audit.head();
  const from = Math.max(1, head.seq - (options.window ?? CHAIN_STATUS_WINDOW) + 1);
  const [report, checkpoint] = await Promise.all([
    verifyAuditLog(exportRecords(repos, { issuer: options.issuer, jwks: options.jwks, from, exportedAt: options.now }), { jwks: options.jwks }),
    repos.audit.lastCheckpoint(),
  ]);
  return {
    ok: report.ok,
    from: report.from,
    to: report.to,
    head: { seq: head.seq, hash: head.hash },
    events: report.events,
    checkpoints: report.checkpoints,
    proofs: report.proofs,
    last_checkpoint: checkpoint ? { seq: checkpoint.seq, at: new Date(checkpoint.at).toISOString() } : null,
    problem: report.problem,
    checked_at: new Date(options.now).toISOString(),
  };
}
