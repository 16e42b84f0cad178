import { describe, expect, it } from 'vitest';
import type { Identity } from '../../src/identity/identity.js';
import type { Store } from '../../src/store/database.js';
import type { AuditRow, ChainHead } from '../../src/store/repositories/audit.js';

/** A migrated store and, for cross-broker semantics, a second store on the same database. */
export interface StorePair {
  readonly store: Store;
  /** Another broker's store on the same database (PostgreSQL), or the same store (SQLite: one process). */
  readonly other: Store;
  close(): Promise<void>;
}

let serial = 0;
const unique = (prefix: string) => `${prefix}-${++serial}-${Math.random().toString(36).slice(2, 8)}`;

function identity(overrides: Partial<Identity> = {}): Identity {
  const id = unique('kid');
  return {
    id,
    address: `${id}@acme.local`,
    role: 'agent',
    status: 'pending',
    publicKey: new Uint8Array(32).fill(serial % 256),
    keyUri: 'memory:test',
    attributes: { team: 'payments' },
    createdAt: 1_000 + serial,
    enrolledAt: null,
    revokedAt: null,
    revokedBy: null,
    revocationReason: null,
    ...overrides,
  };
}

/** Chains `count` events with stand-in hashes: the repository stores what it is given, in order. */
function chainOf(count: number, seen: ChainHead[] = [], details: (i: number) => Record<string, unknown> = () => ({})) {
  return (head: ChainHead) => {
    seen.push(head);
    const rows: AuditRow[] = [];
    let prev = head.hash;
    for (let i = 1; i <= count; i++) {
      const seq = head.seq + i;
      const hash = `h${seq}`;
      rows.push({ seq, at: 5_000 + seq, actor: null, action: 'test.event', outcome: 'success', identity_id: null, reason: null, details: JSON.stringify(details(i)), proof: null, prev_hash: prev, hash });
      prev = hash;
    }
    return { rows, hash: prev };
  };
}

/**
 * The behaviour every repository implementation must show, run against each dialect (SQLite and
 * PostgreSQL) by the test files beside this one.
 */
export function describeRepositoryContract(name: string, open: () => Promise<StorePair>): void {
  describe(`repository contract: ${name}`, () => {
    const withStores = (test: (pair: StorePair) => Promise<void>) => async () => {
      const pair = await open();
      try {
        await test(pair);
      } finally {
        await pair.close();
      }
    };

    it(
      'identities: insert, find by id, address or either, list in creation order with filters',
      withStores(async ({ store }) => {
        const { identities } = store.repos;
        const a = identity({ createdAt: 2, address: 'b@acme.local' });
        const b = identity({ createdAt: 1, role: 'admin', status: 'active', enrolledAt: 1 });
        const c = identity({ createdAt: 2, address: 'a@acme.local', role: 'reviewer', status: 'active' });
        for (const each of [a, b, c]) await identities.insert(each, 'admin-kid');
        expect(await identities.findById(a.id)).toEqual(a);
        expect(await identities.findByAddress(c.address)).toEqual(c);
        expect(await identities.findById('nobody')).toBeUndefined();
        expect((await identities.findByAddressOrId(a.address, 'other'))?.id).toBe(a.id);
        expect((await identities.findByAddressOrId('other@acme.local', b.id))?.id).toBe(b.id);
        expect(await identities.findByAddressOrId('other@acme.local', 'other')).toBeUndefined();
        expect((await identities.list()).map((each) => each.id)).toEqual([b.id, c.id, a.id]);
        expect((await identities.list({ status: 'active' })).map((each) => each.id)).toEqual([b.id, c.id]);
        expect((await identities.list({ role: 'reviewer' })).map((each) => each.id)).toEqual([c.id]);
        expect(await identities.activeAdminAddresses()).toEqual([b.address]);
        expect((await identities.findActive(c.id, ['reviewer', 'admin']))?.id).toBe(c.id);
        expect(await identities.findActive(c.id, ['admin'])).toBeUndefined();
        expect(await identities.findActive(a.id, ['agent'])).toBeUndefined(); // pending
        expect(await identities.addresses([a.id, 'nobody', c.id])).toEqual(new Map([[a.id, a.address], [c.id, c.address]]));
        await expect(identities.insert({ ...identity(), address: a.address }, null)).rejects.toThrow();
      }),
    );

    it(
      'identities: public keys in id order, a keyset page at a time',
      withStores(async ({ store }) => {
        const inserted = [identity(), identity(), identity()];
        for (const each of inserted) await store.repos.identities.insert(each, null);
        const ids = inserted.map((each) => each.id).sort();
        const first = await store.repos.identities.publicKeysAfter('', 2);
        expect(first.map((row) => row.id)).toEqual(ids.slice(0, 2));
        const rest = await store.repos.identities.publicKeysAfter(first[1]!.id, 2);
        expect(rest.map((row) => row.id)).toEqual(ids.slice(2));
        expect(rest[0]!.publicKey).toBe(Buffer.from(inserted.find((each) => each.id === ids[2])!.publicKey).toString('base64url'));
      }),
    );

    it(
      'identities: activate leaves a revoked identity alone; revoke changes a live identity once',
      withStores(async ({ store }) => {
        const { identities } = store.repos;
        const agent = identity();
        await identities.insert(agent, null);
        expect(await identities.activate(agent.id, 7_000)).toMatchObject({ status: 'active', enrolledAt: 7_000 });
        const revocation = { at: 8_000, by: 'admin-kid', reason: 'left the team' };
        expect(await identities.revoke(agent.address, revocation)).toMatchObject({ status: 'revoked', revokedAt: 8_000, revokedBy: 'admin-kid', revocationReason: 'left the team' });
        expect(await identities.revoke(agent.address, revocation)).toBeUndefined();
        expect(await identities.revoke('nobody@acme.local', revocation)).toBeUndefined();
        expect(await identities.activate(agent.id, 9_000)).toBeUndefined();
        expect((await identities.findById(agent.id))?.status).toBe('revoked');
      }),
    );

    it(
      'tickets: a ticket is redeemed once, by its identity, before it expires, also when redemptions race',
      withStores(async ({ store, other }) => {
        const agent = identity();
        await store.repos.identities.insert(agent, null);
        const ticket = { ticketHash: unique('ticket'), identityId: agent.id, issuedAt: 1_000, issuedBy: 'admin-kid', expiresAt: 2_000 };
        await store.repos.tickets.insert(ticket);
        expect(await store.repos.tickets.find(ticket.ticketHash)).toEqual({ ...ticket, redeemedAt: null });
        expect(await store.repos.tickets.redeem(ticket.ticketHash, 'someone-else', 1_500)).toBe(false);
        expect(await store.repos.tickets.redeem(ticket.ticketHash, agent.id, 2_000)).toBe(false); // expired
        const racing = await Promise.all([store, other, store, other].map((each) => each.repos.tickets.redeem(ticket.ticketHash, agent.id, 1_500)));
        expect(racing.filter(Boolean)).toHaveLength(1);
        expect((await store.repos.tickets.find(ticket.ticketHash))?.redeemedAt).toBe(1_500);
        expect(await store.repos.tickets.find('unknown')).toBeUndefined();
      }),
    );

    it(
      'replay cache: a key is fresh once, across brokers and concurrent calls, until pruned after it expires',
      withStores(async ({ store, other }) => {
        const agent = identity();
        await store.repos.identities.insert(agent, null);
        const key = `${agent.id}:${unique('jti')}`;
        const racing = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? other : store).repos.replayCache.remember(key, agent.id, 10_000)));
        expect(racing.filter(Boolean)).toHaveLength(1);
        expect(await other.repos.replayCache.remember(key, agent.id, 10_000)).toBe(false);
        const lasting = `${agent.id}:${unique('jti')}`;
        expect(await store.repos.replayCache.remember(lasting, agent.id, 20_000)).toBe(true);
        await store.repos.replayCache.prune(10_000);
        expect(await store.repos.replayCache.remember(key, agent.id, 30_000)).toBe(true);
        expect(await store.repos.replayCache.remember(lasting, agent.id, 30_000)).toBe(false);
      }),
    );

    it(
      'audit: appends in order after the chain head, with no gaps, whoever appends concurrently',
      withStores(async ({ store, other }) => {
        const seen: ChainHead[] = [];
        expect(await store.repos.audit.head()).toMatchObject({ seq: 0 });
        await store.repos.audit.append(3, chainOf(3, seen));
        expect(seen[0]!.seq).toBe(0);
        expect(await store.repos.audit.head()).toEqual({ seq: 3, hash: 'h3' });
        await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? other : store).repos.audit.append(2, chainOf(2, seen))));
        // Each append saw the head the previous one left: 21 distinct heads, 2 apart.
        expect(seen.map((head) => head.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 21 }, (_, i) => (i === 0 ? 0 : 1 + 2 * i)));
        expect(await store.repos.audit.snapshot()).toEqual({ head: { seq: 43, hash: 'h43' }, maxSeq: 43 });
        const pages: number[] = [];
        for await (const page of store.repos.audit.eventPages(2, 42, (seq, _at, _actor, _action, _outcome, _identity, _reason, _details, _proof, prevHash, hash) => ({ seq, prevHash, hash }))) {
          for (const event of page) {
            expect(event.hash).toBe(`h${event.seq}`);
            expect(event.prevHash).toBe(event.seq === 1 ? seen[0]!.hash : `h${event.seq - 1}`);
            pages.push(event.seq);
          }
        }
        expect(pages).toEqual(Array.from({ length: 41 }, (_, i) => i + 2));
        expect(await store.repos.audit.append(0, chainOf(0))).toBeUndefined();
        expect((await store.repos.audit.head()).seq).toBe(43);
      }),
    );

    it(
      'audit: an append inside a unit of work commits or rolls back with it, giving its seqs back',
      withStores(async ({ store }) => {
        const agent = identity();
        await expect(
          store.transaction(async (repos) => {
            await repos.identities.insert(agent, null);
            await repos.audit.append(2, chainOf(2));
            throw new Error('operation failed');
          }),
        ).rejects.toThrow('operation failed');
        expect(await store.repos.identities.findById(agent.id)).toBeUndefined();
        expect(await store.repos.audit.snapshot()).toEqual({ head: { seq: 0, hash: expect.any(String) }, maxSeq: 0 });
        await store.transaction(async (repos) => {
          await repos.identities.insert(agent, null);
          await repos.audit.append(2, chainOf(2));
        });
        expect(await store.repos.identities.findById(agent.id)).toEqual(agent);
        expect(await store.repos.audit.head()).toEqual({ seq: 2, hash: 'h2' });
      }),
    );

    it(
      'audit: lists by filter, in either seq order, JSON detail fields included',
      withStores(async ({ store }) => {
        await store.repos.audit.append(6, chainOf(6, [], (i) => ({ lease_id: i % 2 ? 'lease-odd' : 'lease-even', backend: 'pg' })));
        const seqs = async (filter: Parameters<typeof store.repos.audit.list>[0]) => (await store.repos.audit.list(filter)).map((row) => row.seq);
        expect(await seqs({ limit: 10 })).toEqual([1, 2, 3, 4, 5, 6]);
        expect(await seqs({ lease: 'lease-odd', limit: 10 })).toEqual([1, 3, 5]);
        expect(await seqs({ lease: 'lease-even', order: 'desc', limit: 2 })).toEqual([6, 4]);
        expect(await seqs({ backend: 'pg', after: 2, before: 6, limit: 10 })).toEqual([3, 4, 5]);
        expect(await seqs({ since: 5_002, until: 5_003, limit: 10 })).toEqual([2, 3]);
        expect(await seqs({ action: 'other', limit: 10 })).toEqual([]);
        expect((await store.repos.audit.list({ limit: 1 }))[0]).toMatchObject({ seq: 1, action: 'test.event', outcome: 'success', details: '{"lease_id":"lease-odd","backend":"pg"}' });
      }),
    );

    it(
      'audit: the first checkpoint stored for a seq stands; checkpoints page in seq order',
      withStores(async ({ store, other }) => {
        expect(await store.repos.audit.lastCheckpoint()).toBeUndefined();
        for (const seq of [10, 20, 30]) await store.repos.audit.insertCheckpoint({ seq, hash: `h${seq}`, at: seq * 100, jws: `jws-${seq}` });
        await other.repos.audit.insertCheckpoint({ seq: 20, hash: 'h20', at: 9_999, jws: 'second' });
        expect(await store.repos.audit.lastCheckpoint()).toEqual({ seq: 30, hash: 'h30', at: 3_000, jws: 'jws-30' });
        expect((await store.repos.audit.checkpoints(10, 30, 10)).map((c) => [c.seq, c.jws])).toEqual([[20, 'jws-20'], [30, 'jws-30']]);
        expect((await store.repos.audit.checkpoints(0, 30, 2)).map((c) => c.seq)).toEqual([10, 20]);
        expect((await store.repos.audit.checkpoints(0, 25, 10)).map((c) => c.seq)).toEqual([10, 20]);
      }),
    );

    it(
      'changes: every identity write leaves a change row in its transaction; old rows are pruned',
      withStores(async ({ store }) => {
        const before = await store.repos.changes.lastId();
        const agent = identity();
        await store.repos.identities.insert(agent, null);
        await store.repos.identities.activate(agent.id, 1);
        await expect(store.transaction(async (repos) => {
          await repos.identities.revoke(agent.address, { at: 2, by: 'admin', reason: 'x' });
          throw new Error('rolled back');
        })).rejects.toThrow('rolled back');
        const after = await store.repos.changes.lastId();
        expect(after).toBeGreaterThan(before);
        const synced = store.repos.changes.afterSync(before);
        if (store.dialect === 'sqlite') expect(synced?.map((change) => [change.kind, change.key])).toEqual([['identity', agent.id], ['identity', agent.id]]);
        else expect(synced).toBeUndefined();
        await store.repos.changes.pruneBefore(0);
        expect(await store.repos.changes.lastId()).toBe(after);
        await store.repos.changes.pruneBefore(Date.now() + 60_000);
        expect(await store.repos.changes.lastId()).toBe(0);
      }),
    );

    it(
      'review sessions: a code becomes one session once, before it expires; ended ones are pruned',
      withStores(async ({ store, other }) => {
        const reviewer = identity({ role: 'reviewer', status: 'active' });
        await store.repos.identities.insert(reviewer, null);
        const { reviewSessions } = store.repos;
        await reviewSessions.insertCode({ codeHash: 'code-1', identityId: reviewer.id, createdAt: 1_000, codeExpiresAt: 2_000 });
        await reviewSessions.insertCode({ codeHash: 'code-2', identityId: reviewer.id, createdAt: 1_000, codeExpiresAt: 2_000 });
        expect(await reviewSessions.redeemCode('code-2', { tokenHash: 'late', expiresAt: 9_000 }, 2_000)).toBeUndefined();
        const racing = await Promise.all([store, other, store].map((each, i) => each.repos.reviewSessions.redeemCode('code-1', { tokenHash: `token-${i}`, expiresAt: 5_000 }, 1_500)));
        expect(racing.filter((claimed) => claimed !== undefined)).toEqual([reviewer.id]);
        const token = `token-${racing.findIndex((claimed) => claimed !== undefined)}`;
        expect(await reviewSessions.findSession(token, 4_999)).toEqual({ identityId: reviewer.id, expiresAt: 5_000 });
        expect(await reviewSessions.findSession(token, 5_000)).toBeUndefined();
        await reviewSessions.pruneExpired(4_000);
        expect(await reviewSessions.findSession(token, 4_500)).toBeDefined();
        await reviewSessions.pruneExpired(5_000);
        expect(await reviewSessions.findSession(token, 4_500)).toBeUndefined();
      }),
    );

    it(
      'settings: a value is set, replaced and read by every broker',
      withStores(async ({ store, other }) => {
        expect(await store.repos.settings.get('wrapping_key_uri')).toBeUndefined();
        await store.repos.settings.set('wrapping_key_uri', 'kms:one');
        await other.repos.settings.set('wrapping_key_uri', 'kms:two');
        expect(await store.repos.settings.get('wrapping_key_uri')).toBe('kms:two');
      }),
    );
  });
}
