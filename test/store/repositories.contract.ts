import { describe, expect, it } from 'vitest';
import type { Identity, IdentityKey } from '../../src/identity/identity.js';
import type { Store } from '../../src/store/database.js';
import type { AuditRow, ChainHead } from '../../src/store/repositories/audit.js';
import { isDuplicateKey, type StoredBackend } from '../../src/store/repositories/backends.js';
import { DatabaseAuditLog } from '../../src/audit/audit-log.js';
import type { Grant } from '../../src/store/repositories/grants.js';
import type { LeaseRow } from '../../src/store/repositories/leases.js';
import type { Delegation } from '../../src/store/repositories/delegations.js';
import type { IssuerProfile } from '../../src/trust/issuer-profile.js';
import type { SessionRecord } from '../../src/store/repositories/sessions.js';
import type { RetiringBrokerKey } from '../../src/store/repositories/broker-keys.js';

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

function backend(name = unique('backend')): StoredBackend {
  return { name, type: 'postgres', config: '{"roles":{}}', sealedSecret: 'sealed', wrappedKey: 'wrapped', wrappingKeyUri: 'memory:wrap', createdAt: 1_000, createdBy: 'admin-kid' };
}

function grant(backendName: string, overrides: Partial<Grant> = {}): Grant {
  return { id: unique('grt'), subject: 'agent@acme.local', backend: backendName, role: 'reader', max_ttl_ms: 60_000, default_ttl_ms: 30_000, constraints: '{}', required_user_claims: '{}', created_at: 1_000, created_by: 'admin-kid', ...overrides };
}

function lease(owner: Identity, backendName: string, grantId: string, overrides: Partial<LeaseRow> = {}): LeaseRow {
  return {
    id: unique('lse'),
    identity_id: owner.id,
    backend: backendName,
    role: 'reader',
    grant_id: grantId,
    state: 'pending',
    revocation: '{"user":"u"}',
    issued_at: 1_000,
    expires_at: 5_000,
    max_expires_at: 9_000,
    revoked_at: null,
    revoked_by: null,
    revocation_reason: null,
    attempts: 0,
    next_attempt_at: null,
    last_error: null,
    token_hash: null,
    constraints: '{}',
    delegation_id: null,
    act: null,
    ...overrides,
  };
}

function delegation(delegator: string, delegatee: string, overrides: Partial<Delegation> = {}): Delegation {
  return {
    id: unique('dlg'),
    parentId: null,
    rootKind: 'agent',
    delegatorIdentityId: delegator,
    delegatorUser: null,
    delegateeIdentityId: delegatee,
    backend: 'orders',
    role: 'readonly',
    constraints: { max_amount: '100' },
    purpose: 'report',
    depth: 1,
    expiresAt: 10_000,
    createdAt: 1_000 + serial,
    status: 'active',
    revokedAt: null,
    revokedBy: null,
    revokedReason: null,
    evidence: { kind: 'request-proof', proof: 'jws', body: '{}' },
    ...overrides,
  };
}

/** Base64url-looking ids (mixed case, '-' and '_'): keyset pages must not depend on how the dialect orders those. */
const thumbprintLike = (prefix = '') => `${prefix}${Buffer.from(unique('t')).toString('base64url')}-${Math.random().toString(36).slice(2, 6).toUpperCase()}_x`;

function session(identityId: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id: thumbprintLike('ses_'),
    identityId,
    keyId: identityId,
    // Generations are the agent's clock in ms: past 2^31, so they must round-trip as bigints.
    generation: 1_764_000_000_000 + serial,
    publicKey: new Uint8Array(32).fill(serial % 256),
    certificate: `cert-${serial}`,
    issuedAt: 1_000,
    expiresAt: 5_000,
    createdAt: 1_000,
    revokedAt: null,
    ...overrides,
  };
}

function identityKey(identityId: string, overrides: Partial<IdentityKey> = {}): IdentityKey {
  return { keyId: thumbprintLike(), identityId, publicKey: new Uint8Array(32).fill(serial % 256), keyUri: `memory:${unique('key')}`, createdAt: 1_000, notAfter: null, retiredAt: null, ...overrides };
}

function brokerKey(overrides: Partial<RetiringBrokerKey> = {}): RetiringBrokerKey {
  return { uri: `kms:${unique('key')}`, purpose: 'authority', kid: thumbprintLike(), publicKey: 'public-key', createdAt: 1_000, notAfter: 5_000, retiredAt: null, ...overrides };
}

/** Pages through a keyset-paginated listing `limit` at a time: every key once, in the order the pages give. */
async function allPages<T>(page: (after: string) => Promise<T[]>, keyOf: (row: T) => string, limit: number): Promise<string[]> {
  const keys: string[] = [];
  for (let after = ''; ; ) {
    const rows = await page(after);
    keys.push(...rows.map(keyOf));
    if (rows.length < limit) return keys;
    after = keyOf(rows.at(-1)!);
  }
}

/** An active agent, a backend and a grant for it: what a lease refers to. */
async function leaseParties(store: Store) {
  const owner = identity({ status: 'active', enrolledAt: 1 });
  await store.repos.identities.insert(owner, null);
  const target = backend();
  await store.repos.backends.insert(target);
  const granted = grant(target.name);
  await store.repos.grants.insert(granted);
  return { owner, target, granted, leaseFor: (overrides: Partial<LeaseRow> = {}) => lease(owner, target.name, granted.id, overrides) };
}

const auditEvent = (leaseId: string) => ({ actor: null, action: 'lease.test', outcome: 'success' as const, details: { lease_id: leaseId } });

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
      'trusted issuers: one profile per issuer, read back exactly by every broker, gone with a rolled-back unit of work',
      withStores(async ({ store, other }) => {
        const issuer = `https://${unique('idp')}.example`;
        const profile: IssuerProfile = {
          issuer,
          audience: 'tessera',
          algorithms: ['ES256'],
          keys: { jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', kid: 'k1' }] } },
          requiredClaims: { groups: 'support' },
          createdAt: 1_000,
          createdBy: null,
        };
        expect(await store.repos.trustedIssuers.add(profile)).toBe(true);
        expect(await other.repos.trustedIssuers.add({ ...profile, audience: 'other' })).toBe(false);
        expect(await other.repos.trustedIssuers.get(issuer)).toEqual(profile);
        expect(await store.repos.trustedIssuers.get(`${issuer}/`)).toBeUndefined(); // exact match only
        const remote = { ...profile, issuer: `${issuer}/remote`, keys: { jwksUrl: 'https://idp.example/jwks.json' } };
        await expect(store.transaction(async (repos) => {
          await repos.trustedIssuers.add(remote);
          throw new Error('rolled back');
        })).rejects.toThrow('rolled back');
        expect(await store.repos.trustedIssuers.get(remote.issuer)).toBeUndefined();
        await store.repos.trustedIssuers.add(remote);
        expect((await store.repos.trustedIssuers.list()).filter((each) => each.issuer.startsWith(issuer))).toEqual([profile, remote]);
        expect(await other.repos.trustedIssuers.remove(issuer)).toEqual(profile);
        expect(await store.repos.trustedIssuers.remove(issuer)).toBeUndefined();
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

    it(
      'backends: insert, find, list by name; a taken name is a duplicate key; removal takes its grants along',
      withStores(async ({ store, other }) => {
        const { backends, grants } = store.repos;
        const [b, a] = [backend(`b-${unique('x')}`), backend(`a-${unique('x')}`)];
        await backends.insert(b);
        await backends.insert(a);
        expect(await other.repos.backends.find(a.name)).toEqual(a);
        expect(await backends.find('nobody')).toBeUndefined();
        expect((await backends.list()).map((each) => each.name)).toEqual([a.name, b.name]);
        const duplicate = await backends.insert({ ...a, type: 'other' }).then(() => undefined, (error: unknown) => error);
        expect(isDuplicateKey(duplicate)).toBe(true);
        expect(await backends.liveLeaseCount(a.name)).toBe(0);
        await grants.insert(grant(a.name));
        await grants.insert(grant(a.name));
        await grants.insert(grant(b.name));
        expect(await backends.remove(a.name)).toEqual({ grantsRemoved: 2 });
        expect(await backends.find(a.name)).toBeUndefined();
        expect((await grants.list()).map((each) => each.backend)).toEqual([b.name]);
      }),
    );

    it(
      'grants: insert, find, list in creation order with filters, remove once; a set of subjects\' grants, the most generous first',
      withStores(async ({ store }) => {
        const { grants } = store.repos;
        const target = backend();
        await store.repos.backends.insert(target);
        const short = grant(target.name, { subject: 'attr:team=payments', max_ttl_ms: 10_000, default_ttl_ms: 10_000, created_at: 3 });
        const long = grant(target.name, { max_ttl_ms: 90_000, constraints: '{"max_amount":"5"}', created_at: 2 });
        const otherRole = grant(target.name, { role: 'writer', max_ttl_ms: 900_000, created_at: 1 });
        for (const each of [short, long, otherRole]) await grants.insert(each);
        expect(await grants.findById(long.id)).toEqual(long);
        expect((await grants.list()).map((each) => each.id)).toEqual([otherRole.id, long.id, short.id]);
        expect((await grants.list({ subject: 'attr:team=payments' })).map((each) => each.id)).toEqual([short.id]);
        expect(await grants.list({ backend: 'nobody' })).toEqual([]);
        expect(await grants.mostGenerousFirst(target.name, 'reader', ['agent@acme.local', 'attr:team=payments'])).toEqual([long, short]);
        expect(await grants.mostGenerousFirst(target.name, 'reader', ['other@acme.local', 'attr:team=payments'])).toEqual([short]);
        expect(await grants.mostGenerousFirst(target.name, 'reader', ['other@acme.local'])).toEqual([]);
        expect(await grants.remove(long.id)).toEqual(long);
        expect(await grants.remove(long.id)).toBeUndefined();
        expect(await grants.mostGenerousFirst(target.name, 'reader', ['agent@acme.local', 'attr:team=payments'])).toEqual([short]);
      }),
    );

    it(
      'leases: intents are inserted alone or together, found by id and token, listed with their address; a renewal needs an active lease',
      withStores(async ({ store, other }) => {
        const { owner, target, leaseFor } = await leaseParties(store);
        const { leases } = store.repos;
        const first = leaseFor({ issued_at: 2_000, token_hash: 'token-hash-1' });
        const [second, third] = [leaseFor({ issued_at: 1_000 }), leaseFor({ issued_at: 3_000, state: 'active' })];
        await leases.insertIntent(first);
        await leases.insertIntents([second, third]);
        expect(await other.repos.leases.findById(first.id)).toEqual(first);
        expect(await leases.findById('nobody')).toBeUndefined();
        expect(await leases.findByTokenHash('token-hash-1')).toEqual({
          id: first.id, identity_id: owner.id, backend: target.name, role: 'reader', constraints: '{}', act: null, state: 'pending', expires_at: 5_000, identity_status: 'active', identity_role: 'agent',
        });
        expect(await leases.findByTokenHash('unknown')).toBeUndefined();
        expect((await leases.list({}, 10)).map((each) => [each.id, each.address])).toEqual([second, first, third].map((each) => [each.id, owner.address]));
        expect((await leases.list({ state: 'active' }, 10)).map((each) => each.id)).toEqual([third.id]);
        expect((await leases.list({ address: 'other@acme.local' }, 10))).toEqual([]);
        expect((await leases.list({ backend: target.name }, 1)).map((each) => each.id)).toEqual([second.id]);
        // All or nothing: a batch with a duplicate id leaves none of its intents behind.
        const fresh = leaseFor();
        await expect(leases.insertIntents([fresh, first])).rejects.toThrow();
        expect(await leases.findById(fresh.id)).toBeUndefined();
        expect(await leases.renew(first.id, 6_000)).toBe(false);
        expect(await leases.renew(third.id, 6_000)).toBe(true);
        expect((await leases.findById(third.id))?.expires_at).toBe(6_000);
      }),
    );

    it(
      'leases: activation and finished revocations change a row once, each with its audit event, in one transaction',
      withStores(async ({ store, other }) => {
        const { owner, leaseFor } = await leaseParties(store);
        const audit = new DatabaseAuditLog(store.repos, { now: () => 7_000 });
        const [a, b] = [leaseFor(), leaseFor()];
        await store.repos.leases.insertIntents([a, b]);
        const activation = (each: LeaseRow) => ({ change: { leaseId: each.id, identityId: owner.id }, event: auditEvent(each.id) });
        expect(await store.repos.leases.activate([activation(a), activation(a), activation(b)], audit)).toEqual([true, false, true]);
        expect((await store.repos.leases.findById(a.id))?.state).toBe('active');
        // An identity that is no longer active gets no lease activated.
        const c = leaseFor();
        await store.repos.leases.insertIntent(c);
        await store.repos.identities.revoke(owner.address, { at: 7_000, by: 'admin-kid', reason: 'test' });
        expect(await store.repos.leases.activate([activation(c)], audit)).toEqual([false]);

        const claimed = await store.repos.leases.claim({ scope: { kind: 'live', identityId: owner.id }, now: 7_000, reservedUntil: 8_000, limit: 10, cause: { actor: 'admin-kid', reason: 'revoked by admin' } });
        expect(claimed.map((each) => each.id).sort()).toEqual([a.id, b.id, c.id].sort());
        expect(claimed.every((each) => each.state === 'revocation-pending' && each.next_attempt_at === 8_000 && each.revoked_by === 'admin-kid')).toBe(true);
        const finish = (each: LeaseRow) => ({ change: { leaseId: each.id, state: 'revoked' as const, at: 7_500 }, event: auditEvent(each.id) });
        // Two brokers finishing the same revocation: only the first records it.
        expect(await store.repos.leases.finishRevocations([finish(a), finish(b)], audit)).toEqual([true, true]);
        expect(await other.repos.leases.finishRevocations([finish(a)], new DatabaseAuditLog(other.repos, { now: () => 7_000 }))).toEqual([false]);
        expect(await store.repos.leases.findById(a.id)).toMatchObject({ state: 'revoked', revoked_at: 7_500, next_attempt_at: null, revoked_by: 'admin-kid', revocation_reason: 'revoked by admin' });
        const events = await store.repos.audit.list({ action: 'lease.test', limit: 100 });
        expect(events.map((event) => (JSON.parse(event.details) as { lease_id: string }).lease_id).sort()).toEqual([a.id, b.id, a.id, b.id].sort());
      }),
    );

    it(
      'leases: claims take each scope, re-checked, at most a batch; failures are counted and reported; a take-over claims any state',
      withStores(async ({ store }) => {
        const { leaseFor } = await leaseParties(store);
        const { leases } = store.repos;
        const expired = leaseFor({ state: 'active', expires_at: 1_500 });
        const live = leaseFor({ state: 'active', expires_at: 9_000 });
        const stale = leaseFor({ issued_at: 100 });
        const due = leaseFor({ state: 'revocation-pending', next_attempt_at: 1_900 });
        const reserved = leaseFor({ state: 'revocation-pending', next_attempt_at: 5_000 });
        const done = leaseFor({ state: 'revoked', revoked_at: 500 });
        await leases.insertIntents([expired, live, stale, due, reserved, done]);
        const claim = async (scope: Parameters<typeof leases.claim>[0]['scope'], limit = 10) =>
          (await leases.claim({ scope, now: 2_000, reservedUntil: 3_000, limit })).map((each) => each.id).sort();
        expect(await claim({ kind: 'expired' })).toEqual([expired.id]);
        expect(await claim({ kind: 'expired' })).toEqual([]);
        expect(await claim({ kind: 'retry' })).toEqual([due.id]);
        expect(await claim({ kind: 'stale-pending', issuedBefore: 200 })).toEqual([stale.id]);
        expect(await claim({ kind: 'live', leaseId: done.id })).toEqual([]);
        expect(await claim({ kind: 'pending', leaseId: reserved.id })).toEqual([reserved.id]);
        expect(await leases.countPendingRevocations({})).toBe(4);
        await leases.recordRevocationFailure(due.id, { nextAttemptAt: 4_000, error: 'upstream down' });
        await leases.recordRevocationFailure(live.id, { nextAttemptAt: 4_000, error: 'not pending: unchanged' });
        expect(await leases.findById(due.id)).toMatchObject({ attempts: 1, next_attempt_at: 4_000, last_error: 'upstream down' });
        expect(await leases.findById(live.id)).toEqual(live);
        expect(await leases.pendingRevocations({ leaseId: due.id }, 10)).toEqual([{ id: due.id, backend: due.backend, last_error: 'upstream down' }]);
        expect(await leases.pendingRevocations({}, 2)).toHaveLength(2);
        const [takenOver] = await leases.takeOver(done.id, 'mint_failed', 3_000);
        expect(takenOver).toMatchObject({ id: done.id, state: 'revocation-pending', next_attempt_at: 3_000, revocation_reason: 'mint_failed' });
        expect(await leases.takeOver('nobody', 'mint_failed', 3_000)).toEqual([]);
      }),
    );

    it(
      'leases: brokers claiming at once each claim a lease once, batch by batch',
      withStores(async ({ store, other }) => {
        const { leaseFor } = await leaseParties(store);
        const expired = Array.from({ length: 60 }, (_, i) => leaseFor({ state: 'active', expires_at: 1_000 + i }));
        await store.repos.leases.insertIntents(expired);
        const sweep = async (each: Store) => {
          const claimed: string[] = [];
          for (;;) {
            const batch = await each.repos.leases.claim({ scope: { kind: 'expired' }, now: 2_000, reservedUntil: 3_000, limit: 7 });
            claimed.push(...batch.map((row) => row.id));
            if (batch.length === 0) return claimed;
          }
        };
        const claims = (await Promise.all([store, other, store, other].map(sweep))).flat();
        expect(claims.sort()).toEqual(expired.map((each) => each.id).sort());
      }),
    );

    it(
      'backends: leases that may hold a credential upstream count as live',
      withStores(async ({ store }) => {
        const { target, leaseFor } = await leaseParties(store);
        await store.repos.leases.insertIntents(['pending', 'active', 'revocation-pending', 'revoked', 'expired'].map((state) => leaseFor({ state: state as LeaseRow['state'] })));
        expect(await store.repos.backends.liveLeaseCount(target.name)).toBe(3);
      }),
    );

    it(
      'delegations: chain leaf to root, the active ones received, a subtree revoked once with every id below it',
      withStores(async ({ store }) => {
        const [a, b, c, d] = [identity(), identity(), identity(), identity()];
        for (const each of [a, b, c, d]) await store.repos.identities.insert(each, null);
        expect(await store.repos.identities.findByIds([a.id, 'nobody', c.id])).toEqual(new Map([[a.id, a], [c.id, c]]));
        const root = delegation(a.id, b.id);
        const middle = delegation(b.id, c.id, { parentId: root.id, depth: 2, expiresAt: 9_000 });
        const leaf = delegation(c.id, d.id, { parentId: middle.id, depth: 3, expiresAt: 8_000 });
        const other = delegation(a.id, d.id, { expiresAt: 2_000 });
        await store.transaction(async (repos) => {
          for (const each of [root, middle, leaf, other]) await repos.delegations.insert(each);
        });
        expect(await store.repos.delegations.get(leaf.id)).toEqual(leaf);
        expect((await store.repos.delegations.chain(leaf.id)).map((link) => link.id)).toEqual([leaf.id, middle.id, root.id]);
        expect(await store.repos.delegations.chain('dlg_nobody')).toEqual([]);
        expect((await store.repos.delegations.activeReceived(d.id, 'orders', 'readonly', 1_500)).map((link) => link.id).sort()).toEqual([leaf.id, other.id].sort());
        expect((await store.repos.delegations.activeReceived(d.id, 'orders', 'readonly', 2_000)).map((link) => link.id)).toEqual([leaf.id]);
        expect((await store.repos.delegations.list({ delegatorIdentityId: a.id }, 10)).map((link) => link.id)).toEqual([root.id, other.id]);
        expect((await store.repos.delegations.activeTouching(b.id)).sort()).toEqual([root.id, middle.id].sort());

        const first = await store.transaction((repos) => repos.delegations.revokeSubtrees([middle.id], { actor: a.id, reason: 'done', at: 3_000 }));
        expect(first.revoked.map((link) => link.id).sort()).toEqual([middle.id, leaf.id].sort());
        expect(first.subtree.sort()).toEqual([middle.id, leaf.id].sort());
        expect(await store.repos.delegations.get(leaf.id)).toMatchObject({ status: 'revoked', revokedAt: 3_000, revokedBy: a.id, revokedReason: 'done' });
        const again = await store.transaction((repos) => repos.delegations.revokeSubtrees([root.id], { actor: null, reason: 'later', at: 4_000 }));
        expect(again.revoked.map((link) => link.id)).toEqual([root.id]);
        expect(again.subtree.sort()).toEqual([root.id, middle.id, leaf.id].sort());
        expect(await store.repos.delegations.get(middle.id)).toMatchObject({ revokedReason: 'done' });
        expect(await store.repos.delegations.list({ status: 'active' }, 10)).toEqual([await store.repos.delegations.get(other.id)]);
      }),
    );

    it(
      'sessions: found by id by every broker, generations intact past 2^31; an id is registered once; unknown ids are undefined',
      withStores(async ({ store, other }) => {
        const agent = identity({ status: 'active', enrolledAt: 1 });
        await store.repos.identities.insert(agent, null);
        const registered = session(agent.id, { keyId: thumbprintLike() });
        await store.repos.sessions.insert(registered);
        expect(await other.repos.sessions.find(registered.id)).toEqual(registered);
        expect(await store.repos.sessions.find('ses_nobody')).toBeUndefined();
        await expect(other.repos.sessions.insert({ ...registered, certificate: 'another' })).rejects.toThrow();
        expect((await store.repos.sessions.find(registered.id))?.certificate).toBe(registered.certificate);
        // A session belongs to an identity that exists.
        await expect(store.repos.sessions.insert(session('kid-nobody'))).rejects.toThrow();
      }),
    );

    it(
      'sessions: what a generation meets (the highest ever, a live session with it); ending all sessions ends each once',
      withStores(async ({ store, other }) => {
        const [agent, bystander] = [identity({ status: 'active', enrolledAt: 1 }), identity({ status: 'active', enrolledAt: 1 })];
        for (const each of [agent, bystander]) await store.repos.identities.insert(each, null);
        const { sessions } = store.repos;
        expect(await sessions.lockGenerations(agent.id, 1, 1_000)).toEqual({ highest: null, liveSameGeneration: null });
        const low = session(agent.id, { generation: 3, expiresAt: 5_000 });
        const high = session(agent.id, { generation: 1_764_000_000_007, expiresAt: 9_000 });
        const unrelated = session(bystander.id, { generation: 1_764_000_000_009, expiresAt: 9_000 });
        for (const each of [low, high, unrelated]) await sessions.insert(each);
        expect(await sessions.lockGenerations(agent.id, 3, 4_999)).toEqual({ highest: high.generation, liveSameGeneration: low.id });
        // An expired session no longer holds its generation; the highest ever seen stays.
        expect(await sessions.lockGenerations(agent.id, 3, 5_000)).toEqual({ highest: high.generation, liveSameGeneration: null });
        expect(await sessions.lockGenerations(agent.id, 4, 1_000)).toEqual({ highest: high.generation, liveSameGeneration: null });

        const ending = await Promise.all([store, other].map((each) => each.repos.sessions.endAll(agent.id, 6_000)));
        expect(ending.sort()).toEqual([0, 2]);
        expect(await sessions.endAll(agent.id, 7_000)).toBe(0);
        expect(await sessions.find(high.id)).toEqual({ ...high, revokedAt: 6_000 });
        expect(await sessions.lockGenerations(agent.id, high.generation, 6_000)).toEqual({ highest: high.generation, liveSameGeneration: null });
        expect((await sessions.find(unrelated.id))?.revokedAt).toBeNull();
        expect(await sessions.endAll('kid-nobody', 6_000)).toBe(0);
      }),
    );

    it(
      'sessions: registrations of one generation racing on two brokers leave one session (the identity is locked meanwhile)',
      withStores(async ({ store, other }) => {
        const agent = identity({ status: 'active', enrolledAt: 1 });
        await store.repos.identities.insert(agent, null);
        // What SessionRegistry.register does: lock, check what the generation meets, insert.
        const register = (each: Store) =>
          each.transaction(async (repos) => {
            const candidate = session(agent.id, { generation: 42 });
            const seen = await repos.sessions.lockGenerations(agent.id, candidate.generation, 1_000);
            if (seen.liveSameGeneration !== null || (seen.highest !== null && candidate.generation < seen.highest)) return undefined;
            await repos.sessions.insert(candidate);
            return candidate.id;
          });
        const racing = await Promise.all([store, other, store, other].map(register));
        const winners = racing.filter((id) => id !== undefined);
        expect(winners).toHaveLength(1);
        expect(await store.repos.sessions.lockGenerations(agent.id, 42, 1_000)).toEqual({ highest: 42, liveSameGeneration: winners[0] });
      }),
    );

    it(
      'sessions: certificates page by id, each session once',
      withStores(async ({ store }) => {
        const agents = [identity(), identity()];
        for (const each of agents) await store.repos.identities.insert(each, null);
        const all = Array.from({ length: 7 }, (_, i) => session(agents[i % 2]!.id));
        for (const each of all) await store.repos.sessions.insert(each);
        const paged = await allPages((after) => store.repos.sessions.certificatesAfter(after, 3), (row) => row.id, 3);
        expect([...paged].sort()).toEqual(all.map((each) => each.id).sort());
        expect(new Set(paged).size).toBe(all.length);
        const [first] = await store.repos.sessions.certificatesAfter('', 1);
        const original = all.find((each) => each.id === first!.id)!;
        expect(first).toEqual({ id: original.id, identityId: original.identityId, certificate: original.certificate });
      }),
    );

    it(
      'identity keys: a key id belongs to one identity for good; keys listed oldest first; a rotation ends only the current key',
      withStores(async ({ store, other }) => {
        const [agent, bystander] = [identity({ status: 'active' }), identity({ status: 'active' })];
        for (const each of [agent, bystander]) await store.repos.identities.insert(each, null);
        const keys = store.repos.identityKeys;
        const first = identityKey(agent.id, { keyId: agent.id, createdAt: 1_000 });
        await keys.add(first);
        expect(await other.repos.identityKeys.identityOf(agent.id)).toBe(agent.id);
        expect(await keys.identityOf('nobody')).toBeUndefined();
        expect(await keys.forIdentity(agent.id)).toEqual([first]);
        expect(await keys.forIdentity('nobody')).toEqual([]);
        await expect(keys.add({ ...first, identityId: bystander.id })).rejects.toThrow();
        expect(await keys.identityOf(first.keyId)).toBe(agent.id);

        // Two rotations: each supersedes the key current at the time; a superseded key keeps its grace end.
        expect(await keys.supersede(first.keyId, 2_600)).toBe(true);
        const second = identityKey(agent.id, { createdAt: 2_000 });
        await keys.add(second);
        expect(await other.repos.identityKeys.supersede(first.keyId, 3_100)).toBe(false);
        expect(await other.repos.identityKeys.supersede(second.keyId, 3_100)).toBe(true);
        const third = identityKey(agent.id, { createdAt: 3_000 });
        await keys.add(third);
        expect(await keys.forIdentity(agent.id)).toEqual([{ ...first, notAfter: 2_600 }, { ...second, notAfter: 3_100 }, third]);
        await keys.add(identityKey(bystander.id, { createdAt: 500 }));
        expect((await keys.forIdentity(agent.id)).map((key) => key.keyId)).toEqual([first.keyId, second.keyId, third.keyId]);
        // Keys created in the same millisecond come in key id order, on every dialect.
        const [x, y] = [identityKey(bystander.id, { keyId: 'B-same-ms', createdAt: 4_000 }), identityKey(bystander.id, { keyId: 'A-same-ms', createdAt: 4_000 })];
        await keys.add(x);
        await keys.add(y);
        expect((await keys.forIdentity(bystander.id)).slice(1).map((key) => key.keyId)).toEqual(['A-same-ms', 'B-same-ms']);
      }),
    );

    it(
      'identity keys: retirable once past their grace, earliest first; a retirement is recorded once when brokers race; keys page by key id',
      withStores(async ({ store, other }) => {
        const agent = identity({ status: 'active' });
        await store.repos.identities.insert(agent, null);
        const keys = store.repos.identityKeys;
        const late = identityKey(agent.id, { createdAt: 1_000, notAfter: 3_000 });
        const early = identityKey(agent.id, { createdAt: 2_000, notAfter: 2_500 });
        const current = identityKey(agent.id, { createdAt: 3_000 });
        for (const each of [late, early, current]) await keys.add(each);
        expect(await keys.retirable(2_499)).toEqual([]);
        expect(await keys.retirable(2_500)).toEqual([early]);
        expect(await keys.retirable(3_000)).toEqual([early, late]);
        const racing = await Promise.all([store, other, store, other].map((each) => each.repos.identityKeys.markRetired(early.keyId, 3_500)));
        expect(racing.filter(Boolean)).toHaveLength(1);
        expect(await keys.markRetired(early.keyId, 4_000)).toBe(false);
        expect(await keys.markRetired('nobody', 4_000)).toBe(false);
        expect(await keys.retirable(5_000)).toEqual([late]);
        expect((await keys.forIdentity(agent.id)).find((key) => key.keyId === early.keyId)?.retiredAt).toBe(3_500);

        const more = Array.from({ length: 5 }, () => identityKey(agent.id));
        for (const each of more) await keys.add(each);
        const paged = await allPages((after) => keys.page(after, 2), (key) => key.keyId, 2);
        expect([...paged].sort()).toEqual([late, early, current, ...more].map((key) => key.keyId).sort());
        expect(new Set(paged).size).toBe(paged.length);
      }),
    );

    it(
      'identity keys: rotations racing from the same current key on two brokers leave one current key',
      withStores(async ({ store, other }) => {
        const agent = identity({ status: 'active' });
        await store.repos.identities.insert(agent, null);
        const first = identityKey(agent.id, { keyId: agent.id });
        await store.repos.identityKeys.add(first);
        // What Identities.rotateKey does in its unit of work, both having read `first` as the current key.
        const rotate = (each: Store, at: number) =>
          each.transaction(async (repos) => {
            if (!(await repos.identityKeys.supersede(first.keyId, at + 600))) return undefined;
            const added = identityKey(agent.id, { createdAt: at });
            await repos.identityKeys.add(added);
            return added.keyId;
          });
        const racing = await Promise.all([rotate(store, 2_000), rotate(other, 2_001), rotate(store, 2_002), rotate(other, 2_003)]);
        const winners = racing.filter((keyId) => keyId !== undefined);
        expect(winners).toHaveLength(1);
        const current = (await store.repos.identityKeys.forIdentity(agent.id)).filter((key) => key.notAfter === null);
        expect(current.map((key) => key.keyId)).toEqual(winners);
        expect(await store.repos.identityKeys.supersede('nobody', 9_000)).toBe(false);
      }),
    );

    it(
      'broker keys: superseded keys by purpose, oldest first, overlapping until their not-after; each retired once when brokers race',
      withStores(async ({ store, other }) => {
        const keys = store.repos.brokerKeys;
        const older = brokerKey({ createdAt: 1_000, notAfter: 5_000 });
        const newer = brokerKey({ createdAt: 2_000, notAfter: 3_000 });
        const wrapping = brokerKey({ purpose: 'wrapping', kid: null, publicKey: null, createdAt: 1_500, notAfter: 1_500, retiredAt: 1_500 });
        for (const each of [newer, wrapping, older]) await keys.add(each);
        await expect(other.repos.brokerKeys.add({ ...older, notAfter: 9_000 })).rejects.toThrow();
        expect(await other.repos.brokerKeys.all('authority')).toEqual([older, newer]);
        expect(await keys.all('wrapping')).toEqual([wrapping]);
        expect(await keys.overlapping('authority', 2_999)).toEqual([older, newer]);
        expect(await keys.overlapping('authority', 3_000)).toEqual([older]);
        expect(await keys.overlapping('wrapping', 1_500)).toEqual([]);
        // A wrapping key is recorded already retired: nothing is left to retire.
        expect(await keys.retirable(3_000)).toEqual([newer]);
        expect(await keys.retirable(5_000)).toEqual([newer, older]);
        const racing = await Promise.all([store, other, store, other].map((each) => each.repos.brokerKeys.markRetired(newer.uri, 6_000)));
        expect(racing.filter(Boolean)).toHaveLength(1);
        expect(await keys.markRetired(newer.uri, 7_000)).toBe(false);
        expect(await keys.markRetired('kms:nobody', 7_000)).toBe(false);
        expect(await keys.retirable(9_000)).toEqual([older]);
        expect(await keys.all('authority')).toEqual([older, { ...newer, retiredAt: 6_000 }]);
      }),
    );

    it(
      'broker keys: keys superseded in the same millisecond come in one order on every dialect, also after one is retired',
      withStores(async ({ store }) => {
        const keys = store.repos.brokerKeys;
        // A wrapping-key rotation records every unknown key at once, with one timestamp.
        const [b, a] = [brokerKey({ uri: 'kms:b', purpose: 'wrapping', createdAt: 1_000, notAfter: 1_000 }), brokerKey({ uri: 'kms:a', purpose: 'wrapping', createdAt: 1_000, notAfter: 1_000 })];
        await keys.add(b);
        await keys.add(a);
        expect(await keys.markRetired('kms:b', 1_000)).toBe(true);
        expect((await keys.all('wrapping')).map((key) => key.uri)).toEqual(['kms:a', 'kms:b']);
        await keys.add(brokerKey({ uri: 'kms:0', purpose: 'wrapping', createdAt: 1_000, notAfter: 1_000 }));
        expect((await keys.retirable(1_000)).map((key) => key.uri)).toEqual(['kms:0', 'kms:a']);
      }),
    );
  });
}
