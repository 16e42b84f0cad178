import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DatabaseAuditLog } from '../../src/audit/audit-log.js';
import { eventHash, GENESIS_HASH } from '../../src/audit/chain.js';
import { CHECKPOINT_TYPE } from '../../src/audit/checkpoints.js';
import { base64url } from '../../src/crypto/encoding.js';
import { signCompactJws } from '@tessera-broker/sdk';
import { openStore } from '../../src/store/database.js';
import { appendEvents, type AuditFixture, auditFixture, jwksOf, memorySigner } from './support.js';

const problem = (seq: number, code: string) => expect.objectContaining({ ok: false, problem: expect.objectContaining({ seq, code }) });

describe.each(['sqlite', 'postgres'] as const)('audit hash chain (%s)', (dialect) => {
  let fixture: AuditFixture;
  let agent: Awaited<ReturnType<AuditFixture['agent']>>;
  const db = () => fixture.store.db;

  beforeEach(async () => {
    fixture = await auditFixture(dialect);
    agent = await fixture.agent('bot@acme.local');
    await appendEvents(fixture, 10, agent);
    await fixture.checkpoints.checkpoint(); // signs seq 10
    await appendEvents(fixture, 10, agent);
    await fixture.checkpoints.checkpoint(); // signs seq 20
  });
  afterEach(() => fixture?.close());

  it('a clean log verifies, proofs and checkpoints included', async () => {
    expect(await fixture.verify()).toMatchObject({ ok: true, from: 1, to: 20, events: 20, checkpoints: 2, proofs: 10, lastCheckpoint: 20 });
    const first = await db().selectFrom('audit_events').selectAll().where('seq', '=', 1).executeTakeFirstOrThrow();
    expect(first.prev_hash).toBe(GENESIS_HASH);
  });

  it('verifies a sub-range', async () => {
    expect(await fixture.verify({ from: 5, to: 12 })).toMatchObject({ ok: true, from: 5, to: 12, events: 8, checkpoints: 1 });
  });

  it('names a modified event', async () => {
    await db().updateTable('audit_events').set({ reason: 'nothing to see' }).where('seq', '=', 7).execute();
    expect(await fixture.verify()).toEqual(problem(7, 'hash_mismatch'));
  });

  it('names a modified event whose hash was recomputed, at the link after it', async () => {
    const row = await db().selectFrom('audit_events').selectAll().where('seq', '=', 7).executeTakeFirstOrThrow();
    const forged = { ...row, details: JSON.parse(row.details) as Record<string, unknown>, outcome: 'failure' as const };
    await db().updateTable('audit_events').set({ outcome: 'failure', hash: eventHash(forged) }).where('seq', '=', 7).execute();
    expect(await fixture.verify()).toEqual(problem(8, 'broken_link'));
  });

  it('names a deleted event', async () => {
    await db().deleteFrom('audit_events').where('seq', '=', 4).execute();
    expect(await fixture.verify()).toEqual(problem(4, 'seq_gap'));
  });

  it('names the first of two swapped events', async () => {
    const rows = await db().selectFrom('audit_events').selectAll().where('seq', 'in', [3, 6]).orderBy('seq').execute();
    for (const [row, other] of [[rows[0]!, rows[1]!], [rows[1]!, rows[0]!]] as const) {
      const { seq: _seq, ...content } = other;
      await db().updateTable('audit_events').set(content).where('seq', '=', row.seq).execute();
    }
    expect(await fixture.verify()).toEqual(problem(3, 'hash_mismatch'));
  });

  it('names an inserted forged event', async () => {
    // Make room at seq 5 (highest first, so no key collides), then forge an event that links to seq 4.
    for (let seq = 20; seq >= 5; seq--) await db().updateTable('audit_events').set({ seq: seq + 1 }).where('seq', '=', seq).execute();
    const before = await db().selectFrom('audit_events').selectAll().where('seq', '=', 4).executeTakeFirstOrThrow();
    const forged = { seq: 5, at: before.at, actor: null, action: 'identity.revoked', outcome: 'success' as const, identity_id: null, reason: 'forged', details: {}, proof: null, prev_hash: before.hash };
    await db().insertInto('audit_events').values({ ...forged, details: '{}', hash: eventHash(forged) }).execute();
    // The forgery itself is self-consistent; the event it displaced no longer is.
    expect(await fixture.verify()).toEqual(problem(6, 'hash_mismatch'));
  });

  it('names a rewritten chain at the checkpoint that no longer matches', async () => {
    await rewriteFrom(fixture, 12, { reason: 'rewritten' });
    expect(await fixture.verify()).toEqual(problem(20, 'checkpoint_mismatch'));
  });

  it('names a truncated tail against the last checkpoint', async () => {
    await db().deleteFrom('audit_events').where('seq', '>', 17).execute();
    await db().updateTable('audit_chain_head').set({ seq: 17 }).execute();
    expect(await fixture.verify()).toEqual(problem(18, 'truncated'));
  });

  it('names a truncated tail against the chain head', async () => {
    await appendEvents(fixture, 3); // seq 21..23, after the last checkpoint
    await db().deleteFrom('audit_events').where('seq', '>', 21).execute();
    expect(await fixture.verify()).toEqual(problem(22, 'truncated'));
  });

  it('names an event appended outside the broker', async () => {
    const last = await db().selectFrom('audit_events').selectAll().where('seq', '=', 20).executeTakeFirstOrThrow();
    const forged = { seq: 21, at: last.at, actor: null, action: 'x', outcome: 'success' as const, identity_id: null, reason: null, details: {}, proof: null, prev_hash: last.hash };
    await db().insertInto('audit_events').values({ ...forged, details: '{}', hash: eventHash(forged) }).execute();
    expect(await fixture.verify()).toEqual(problem(21, 'beyond_head'));
  });

  it('catches a checkpoint signed by another key', async () => {
    const other = memorySigner();
    const row = await db().selectFrom('audit_checkpoints').selectAll().where('seq', '=', 10).executeTakeFirstOrThrow();
    const jwks = await jwksOf(fixture.authority);
    const jws = await signCompactJws(other, { alg: 'EdDSA', typ: CHECKPOINT_TYPE, kid: jwks.keys[0]!.kid }, { seq: row.seq, hash: row.hash, at: row.at });
    await db().updateTable('audit_checkpoints').set({ jws }).where('seq', '=', 10).execute();
    expect(await fixture.verify()).toEqual(problem(10, 'checkpoint_bad_signature'));
  });

  it('catches a checkpoint row altered to fit a rewritten chain', async () => {
    await rewriteFrom(fixture, 12, { reason: 'rewritten' });
    const head = await db().selectFrom('audit_chain_head').selectAll().executeTakeFirstOrThrow();
    await db().updateTable('audit_checkpoints').set({ hash: head.hash }).where('seq', '=', 20).execute();
    expect(await fixture.verify()).toEqual(problem(20, 'checkpoint_altered'));
  });

  it('checks checkpoints against the given JWKS, not the one in the export', async () => {
    expect(await fixture.verify({}, await jwksOf(memorySigner()))).toEqual(problem(10, 'checkpoint_bad_signature'));
  });

  it('catches a stored proof that is not a proof', async () => {
    await fixture.audit.append({ actor: agent.id, action: 'lease.issued', outcome: 'success', proof: 'not.a.jws' });
    expect(await fixture.verify()).toEqual(problem(21, 'proof_malformed'));
  });

  it('catches a stored proof signed by someone other than the actor', async () => {
    const other = await fixture.agent('other@acme.local');
    await fixture.audit.append({ actor: agent.id, action: 'lease.issued', outcome: 'success', proof: await other.proof() });
    expect(await fixture.verify()).toEqual(problem(21, 'proof_wrong_actor'));
  });

  it('catches a stored proof with a forged signature', async () => {
    const proof = await agent.proof();
    // A flipped bit, spelled canonically: the proof parses and only the signature fails.
    const cut = proof.lastIndexOf('.') + 1;
    const signature = base64url.decode(proof.slice(cut));
    signature[5]! ^= 0x01;
    const forged = proof.slice(0, cut) + base64url.encode(signature);
    await fixture.audit.append({ actor: agent.id, action: 'lease.issued', outcome: 'success', proof: forged });
    expect(await fixture.verify()).toEqual(problem(21, 'proof_bad_signature'));
  });

  it('keeps the chain linear under concurrent appends, also from two brokers on one database', async () => {
    const url = dialect === 'postgres' ? await currentUrl(fixture) : undefined;
    const second = url ? await openStore(url) : fixture.store;
    try {
      const other = new DatabaseAuditLog(second.repos, fixture.clock);
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          (i % 2 ? other : fixture.audit).append({ actor: null, action: 'concurrent', outcome: 'success', details: { i } }),
        ),
      );
    } finally {
      if (second !== fixture.store) await second.close();
    }
    expect(await fixture.verify()).toMatchObject({ ok: true, events: 60 });
  });
});

/** Re-hashes every event from `seq` on after changing it, as an intruder who knows the algorithm would. */
async function rewriteFrom(fixture: AuditFixture, seq: number, change: { reason: string }): Promise<void> {
  const db = fixture.store.db;
  let prev = (await db.selectFrom('audit_events').select('hash').where('seq', '=', seq - 1).executeTakeFirstOrThrow()).hash;
  const rows = await db.selectFrom('audit_events').selectAll().where('seq', '>=', seq).orderBy('seq').execute();
  for (const row of rows) {
    const event = { ...row, ...change, details: JSON.parse(row.details) as Record<string, unknown>, prev_hash: prev };
    prev = eventHash(event);
    await db.updateTable('audit_events').set({ ...change, prev_hash: event.prev_hash, hash: prev }).where('seq', '=', row.seq).execute();
  }
  await db.updateTable('audit_chain_head').set({ hash: prev }).execute();
}

async function currentUrl(fixture: AuditFixture): Promise<string> {
  const { rows } = await sql<{ db: string }>`select current_database() as db`.execute(fixture.store.db);
  const url = new URL((await import('vitest')).inject('postgresUrl'));
  url.pathname = `/${rows[0]!.db}`;
  return url.toString();
}
