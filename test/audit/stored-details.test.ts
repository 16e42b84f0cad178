import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/audit/canonical.js';
import { eventHash } from '../../src/audit/chain.js';
import { exportRecords } from '../../src/audit/export.js';
import { fromJsonLines, toJsonLines } from '../../src/audit/jsonl.js';
import { verifyAuditLog } from '../../src/audit/verify.js';
import { appendEvents, type AuditFixture, auditFixture, ISSUER, jwksOf } from './support.js';

const problem = (seq: number, code: string) => expect.objectContaining({ ok: false, problem: expect.objectContaining({ seq, code }) });

// The sink stores details as canonical text and the verifier hashes that text as stored; these pin
// that the shortcut never changes a verdict.
describe.each(['sqlite', 'postgres'] as const)('stored details text (%s)', (dialect) => {
  let fixture: AuditFixture;
  const db = () => fixture.store.db;
  const details = async (seq: number) => (await db().selectFrom('audit_events').select('details').where('seq', '=', seq).executeTakeFirstOrThrow()).details;
  const setDetails = (seq: number, text: string) => db().updateTable('audit_events').set({ details: text }).where('seq', '=', seq).execute();

  beforeEach(async () => {
    fixture = await auditFixture(dialect);
    await appendEvents(fixture, 12, await fixture.agent('bot@acme.local'));
  });
  afterEach(() => fixture?.close());

  it('stores details in canonical form, as JSON sees them', async () => {
    await fixture.audit.append({ actor: null, action: 'x', outcome: 'success', details: { z: 1, a: { d: undefined, c: [2, undefined] }, when: new Date(0) } });
    expect(await details(13)).toBe('{"a":{"c":[2,null]},"when":"1970-01-01T00:00:00.000Z","z":1}');
    expect(await fixture.verify()).toMatchObject({ ok: true, events: 13 });
  });

  it('accepts details stored non-canonically (older brokers), mixed with canonical ones', async () => {
    for (const seq of [2, 3, 9]) {
      const parsed = JSON.parse(await details(seq)) as Record<string, unknown>;
      const reordered = JSON.stringify(Object.fromEntries(Object.entries(parsed).reverse()), null, 1);
      expect(reordered).not.toBe(canonicalJson(parsed));
      await setDetails(seq, reordered);
    }
    expect(await fixture.verify()).toMatchObject({ ok: true, events: 12 });
  });

  it('names a changed details value, canonical or not', async () => {
    await setDetails(5, canonicalJson({ ...(JSON.parse(await details(5)) as object), n: 99 }));
    expect(await fixture.verify()).toEqual(problem(5, 'hash_mismatch'));
    await setDetails(5, ` ${JSON.stringify({ n: 4, note: 'héllo ✓', nested: { b: 1, a: [1.5, null, true] } })}`);
    expect(await fixture.verify()).toMatchObject({ ok: true });
    await setDetails(4, JSON.stringify({ note: 'héllo ✓', n: 4, nested: { b: 1, a: [1.5, null, true] } }));
    expect(await fixture.verify()).toEqual(problem(4, 'hash_mismatch')); // seq 4 had n: 3
  });

  it('names a changed event after a run of non-canonical ones', async () => {
    for (const seq of [6, 7]) await setDetails(seq, ` ${await details(seq)}`);
    await setDetails(8, (await details(8)).replace('"n":7', '"n":70'));
    expect(await fixture.verify()).toEqual(problem(8, 'hash_mismatch'));
  });

  it('exports details as JSON objects and the file verifies offline', async () => {
    let text = '';
    for await (const chunk of toJsonLines(exportRecords(fixture.store.repos, { issuer: ISSUER, jwks: await jwksOf(fixture.authority), exportedAt: fixture.clock.now() }))) text += chunk;
    const events = text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>).filter((record) => record.type === 'event');
    expect(events).toHaveLength(12);
    expect(Object.keys(events[0]!)).toEqual(['type', 'seq', 'at', 'actor', 'action', 'outcome', 'identity_id', 'reason', 'details', 'proof', 'prev_hash', 'hash']);
    expect(events[0]!.details).toEqual({ n: 0, note: 'héllo ✓', nested: { b: 1, a: [1.5, null, true] } });
    expect(eventHash(events[3] as never)).toBe(events[3]!.hash);
    expect(await verifyAuditLog(fromJsonLines(Readable.from([text])), { jwks: await jwksOf(fixture.authority) })).toMatchObject({ ok: true, events: 12 });
  });
});
