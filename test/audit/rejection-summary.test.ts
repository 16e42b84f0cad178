import { describe, expect, it } from 'vitest';
import type { AuditEvent, AuditSink } from '../../src/audit/audit-log.js';
import { RejectionSummary } from '../../src/audit/rejection-summary.js';

/** An audit sink that keeps what it is given, and a clock the test moves by hand. */
function fixture() {
  const events: AuditEvent[] = [];
  const audit: AuditSink = { append: async (event) => void events.push(event) };
  const clock = { at: 1_000_000, now: () => clock.at };
  return { events, clock, summary: new RejectionSummary(audit, clock, 10_000) };
}

const junkProof = (source: string, reason = 'proof_malformed') => ({ source, action: 'proof.rejected', reason, sample: { method: 'GET', url: 'http://broker/v1/whoami', claimed_kid: null } });

describe('RejectionSummary', () => {
  it('writes N anonymous rejections as one event with counts per source, action and reason', async () => {
    const { events, clock, summary } = fixture();
    for (let i = 0; i < 500; i += 1) {
      summary.record(junkProof('10.0.0.1'));
      clock.at += 1;
    }
    summary.record(junkProof('10.0.0.1', 'proof_unknown_key'));
    summary.record({ source: '10.0.0.2', action: 'proxy.refused', reason: 'lease_token_invalid', sample: { method: 'GET', path: '/v1/models', token_sha256: 'abc' } });
    expect(events).toEqual([]);
    await summary.flush();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor: null, action: 'request.rejected.summary', outcome: 'denied', proof: null });
    expect(events[0]!.details).toEqual({
      window_start: 1_000_000,
      window_end: 1_000_500,
      total: 502,
      counts: [
        { source: '10.0.0.1', action: 'proof.rejected', reason: 'proof_malformed', count: 500, first_at: 1_000_000, last_at: 1_000_499, sample: junkProof('').sample },
        { source: '10.0.0.1', action: 'proof.rejected', reason: 'proof_unknown_key', count: 1, first_at: 1_000_500, last_at: 1_000_500, sample: junkProof('').sample },
        { source: '10.0.0.2', action: 'proxy.refused', reason: 'lease_token_invalid', count: 1, first_at: 1_000_500, last_at: 1_000_500, sample: { method: 'GET', path: '/v1/models', token_sha256: 'abc' } },
      ],
    });
  });

  it('starts a new window after a flush and writes nothing for an empty one', async () => {
    const { events, clock, summary } = fixture();
    summary.record(junkProof('10.0.0.1'));
    clock.at += 10_000;
    await summary.flush();
    await summary.flush();
    summary.record(junkProof('10.0.0.3'));
    clock.at += 10_000;
    await summary.flush();
    expect(events.map((event) => [event.details!.window_start, event.details!.window_end, event.details!.total])).toEqual([
      [1_000_000, 1_010_000, 1],
      [1_010_000, 1_020_000, 1],
    ]);
  });

  it('flushes what is left when stopped (drain)', async () => {
    const { events, summary } = fixture();
    const stop = summary.start((error) => {
      throw error;
    });
    summary.record(junkProof('10.0.0.1'));
    await stop();
    expect(events.map((event) => event.details!.total)).toEqual([1]);
  });
});
