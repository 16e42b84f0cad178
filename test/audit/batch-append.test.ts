import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AuditEvent, type AuditSink, DatabaseAuditLog } from '../../src/audit/audit-log.js';
import { canonicalJson } from '../../src/audit/canonical.js';
import { eventHash, GENESIS_HASH } from '../../src/audit/chain.js';
import { runWithRequestProof } from '../../src/audit/request-proof.js';
import type { Clock } from '../../src/clock.js';
import { createProof } from '../../src/identity/proof.js';
import { keyThumbprint } from '@tessera-broker/sdk';
import { GroupCommitAudit } from '../../src/proxy/group-commit-audit.js';
import type { Store } from '../../src/store/database.js';
import { type AuditFixture, auditFixture, insertIdentity, ISSUER, memorySigner } from './support.js';

/** A clock that ticks 1 ms per reading: two logs fed the same events in the same order get the same `at`s. */
function tickingClock(start: number): Clock {
  let now = start;
  return { now: () => now++ };
}

const rows = (store: Store) => store.db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
const head = (store: Store) => store.db.selectFrom('audit_chain_head').select(['seq', 'hash']).executeTakeFirstOrThrow();

/** Events of every shape the sink must encode: flat and nested details, JSON's lossy cases, odd strings, proofs given, implied and absent. */
function sampleEvents(agentId: string, proof: string, count: number): AuditEvent[] {
  const events: AuditEvent[] = [];
  for (let i = 0; i < count; i++) {
    switch (i % 6) {
      case 0:
        events.push({
          actor: agentId,
          action: 'proxy.request',
          outcome: 'success',
          identityId: agentId,
          details: { lease_id: `lease_${i}`, backend: 'bench-stripe', role: 'refunds:write', method: 'GET', path: '/v1/charges/ch_1', duration_ms: i / 7, skipped: undefined },
          proof: null,
        });
        break;
      case 1:
        events.push({ actor: agentId, action: 'proxy.response', outcome: i % 4 === 1 ? 'failure' : 'success', identityId: agentId, details: { status: 502, ok: false, none: null, neg: -0 }, proof });
        break;
      case 2:
        events.push({ actor: null, action: 'proof.rejected', outcome: 'denied', reason: 'proof_missing', details: { z: 1, a: { d: undefined, c: [2, undefined, Number.NaN] }, when: new Date(i), big: 1e21 } });
        break;
      case 3:
        events.push({ actor: null, action: 'x.odd', outcome: 'success', details: { quote: 'a"b\\c\n\u0001', lone: '\ud800', emoji: 'héllo ✓ 🙂', nan: Number.NaN, inf: Number.POSITIVE_INFINITY } });
        break;
      case 4:
        events.push({ actor: agentId, action: 'lease.issued', outcome: 'success', identityId: agentId, reason: null }); // no details; proof from the request scope
        break;
      default:
        events.push({ actor: agentId, action: 'lease.renewed', outcome: 'success', details: Object.assign(Object.create(null) as object, { n: i }) }); // proof from the request scope
    }
  }
  return events;
}

describe.each(['sqlite', 'postgres'] as const)('batched audit appends (%s)', (dialect) => {
  let batched: AuditFixture;
  let single: AuditFixture;
  let batchLog: DatabaseAuditLog;
  let singleLog: DatabaseAuditLog;
  let agentId: string;
  let proof: string;

  beforeEach(async () => {
    [batched, single] = await Promise.all([auditFixture(dialect), auditFixture(dialect)]);
    // The same identity in both stores, so the stored proofs verify in both.
    const signer = memorySigner();
    agentId = await keyThumbprint(signer.publicKey);
    for (const { store, clock } of [batched, single]) {
      await insertIdentity(store, signer, 'bot@acme.local', clock.now());
    }
    proof = await createProof(signer, agentId, ISSUER, { method: 'POST', url: `${ISSUER}/v1/leases`, body: '{}' });
    const start = Date.now();
    batchLog = new DatabaseAuditLog(batched.store.repos, tickingClock(start));
    singleLog = new DatabaseAuditLog(single.store.repos, tickingClock(start));
  });
  afterEach(async () => {
    await batched?.close();
    await single?.close();
  });

  const inScope = <T>(work: () => Promise<T>) => runWithRequestProof({ identityId: agentId, proof }, work);
  const oneByOne = async (log: AuditSink, events: readonly AuditEvent[]) => {
    for (const event of events) await inScope(() => log.append(event));
  };

  it('writes the same rows, seqs and hashes as appending one by one, and the log verifies', async () => {
    const events = sampleEvents(agentId, proof, 160);
    const prefix = events.slice(0, 3);
    await oneByOne(batchLog, prefix);
    await oneByOne(singleLog, prefix);

    // 150 events in one transaction (three INSERT chunks), then one outside a transaction, an empty batch, a single append after.
    const batch = events.slice(3, 153);
    await inScope(() => batched.store.transaction((repos) => batchLog.appendMany(batch, repos)));
    await oneByOne(singleLog, batch);
    await inScope(() => batchLog.appendMany(events.slice(153, 159)));
    await oneByOne(singleLog, events.slice(153, 159));
    await batchLog.appendMany([]);
    await oneByOne(batchLog, events.slice(159));
    await oneByOne(singleLog, events.slice(159));

    const [got, want] = await Promise.all([rows(batched.store), rows(single.store)]);
    expect(got).toHaveLength(160);
    expect(got).toEqual(want);
    expect(got.map((row) => row.seq)).toEqual(Array.from({ length: 160 }, (_, i) => i + 1));
    expect(await head(batched.store)).toEqual({ seq: 160, hash: got[159]!.hash });
    expect(await head(batched.store)).toEqual(await head(single.store));

    // Byte for byte what the sink always stored: the JSON round trip of the details, canonicalised, and the §8.1 hash over it.
    let prev = GENESIS_HASH;
    got.forEach((row, i) => {
      expect(row.details).toBe(canonicalJson(JSON.parse(JSON.stringify(events[i]!.details ?? {}))));
      expect(row.prev_hash).toBe(prev);
      expect(row.hash).toBe(eventHash({ ...row, details: JSON.parse(row.details) as Record<string, unknown> }));
      prev = row.hash;
    });
    expect(got.filter((row) => row.proof === proof)).toHaveLength(events.filter((_, i) => [1, 4, 5].includes(i % 6)).length);

    expect(await batched.verify()).toMatchObject({ ok: true, from: 1, to: 160, events: 160 });
    await batched.checkpoints.checkpoint();
    expect(await batched.verify()).toMatchObject({ ok: true, events: 160, checkpoints: 1, lastCheckpoint: 160 });
  });

  it('a batch that rolls back gives its seqs back; a batch that cannot be encoded writes nothing', async () => {
    const events = sampleEvents(agentId, proof, 10);
    await inScope(() => batchLog.appendMany(events.slice(0, 2)));
    const before = await head(batched.store);
    await expect(
      batched.store.transaction(async (repos) => {
        await batchLog.appendMany(events.slice(2, 8), repos);
        throw new Error('operation failed');
      }),
    ).rejects.toThrow('operation failed');
    await expect(batchLog.appendMany([events[2]!, { actor: null, action: 'x', outcome: 'success', details: { n: 1n } }])).rejects.toThrow();
    expect(await head(batched.store)).toEqual(before);
    expect(await rows(batched.store)).toHaveLength(2);

    await inScope(() => batchLog.appendMany(events.slice(2)));
    expect((await rows(batched.store)).map((row) => row.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(await batched.verify()).toMatchObject({ ok: true, events: 10 });
  });

  it('a batch appended while another transaction is open waits for it instead of joining it', async () => {
    const events = sampleEvents(agentId, proof, 18).filter((event) => event.proof !== undefined); // 6 events
    let appended: Promise<void> | undefined;
    await expect(
      batched.store.transaction(async (repos) => {
        await batchLog.append(events[0]!, repos);
        appended = batchLog.appendMany(events.slice(1)); // outside the unit of work: its own transaction
        await new Promise((resolve) => setTimeout(resolve, 20));
        throw new Error('operation failed');
      }),
    ).rejects.toThrow('operation failed');
    await appended;
    expect((await rows(batched.store)).map((row) => row.action)).toEqual(events.slice(1).map((event) => event.action));
    expect(await batched.verify()).toMatchObject({ ok: true, events: events.length - 1 });
  });

  it('deferred events are written together, apart from the batches callers wait for', async () => {
    const events = sampleEvents(agentId, proof, 18).filter((event) => event.proof !== undefined); // 6 events
    const group = new GroupCommitAudit(batched.store, batchLog);
    const deferred = group.defer(events[0]!);
    await group.append(events[1]!);
    expect((await rows(batched.store)).map((row) => row.action)).toEqual([events[1]!.action]); // not held up, not joined
    await group.drained();
    await deferred;
    expect(await rows(batched.store)).toHaveLength(2);
    const lingering = group.defer(events[2]!);
    expect(await rows(batched.store)).toHaveLength(2);
    await lingering; // written on its own within the linger time
    expect(await rows(batched.store)).toHaveLength(3);
    expect(await batched.verify()).toMatchObject({ ok: true, events: 3 });
  });

  it('the proxy group commit writes through appendMany, and still works with a sink that only appends', async () => {
    const events = sampleEvents(agentId, proof, 40).filter((event) => event.proof !== undefined); // the proxy always sets proof
    const group = new GroupCommitAudit(batched.store, batchLog);
    await Promise.all(events.slice(0, 30).map((event) => group.append(event)));
    await Promise.all(events.slice(30).map((event) => group.append(event)));
    await group.drained();
    await oneByOne(singleLog, events);
    expect(await rows(batched.store)).toEqual(await rows(single.store));

    const appendOnly: AuditSink = { append: (event, executor) => batchLog.append(event, executor) };
    const fallback = new GroupCommitAudit(batched.store, appendOnly);
    await Promise.all(events.slice(0, 5).map((event) => fallback.append(event)));
    expect(await batched.verify()).toMatchObject({ ok: true, events: events.length + 5 });
  });
});
