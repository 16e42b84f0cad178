/**
 * The review API and its session model against a real broker: login links, cookie sessions that
 * reach only read-only review routes, the audit filters shared with the CLI, identity timelines.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProvisionResult } from '../../provisioner/provision.js';
import { type CliOptions, cliJson, runCli } from '../support/cli.js';
import {
  ACTIVE_ADDRESS,
  BACKEND,
  enrolledReviewer,
  loginUrl,
  openSession,
  REVIEWER_ADDRESS,
  REVOKED_ADDRESS,
  type ReviewEnv,
  routesOf,
  startReviewEnv,
  XSS_REASON,
} from '../support/review-env.js';
import { rejectionsSince } from '../support/rejections.js';

interface Event {
  seq: number;
  action: string;
  outcome: string;
  reason: string | null;
  actor: string | null;
  identity_id: string | null;
  actor_address: string | null;
  identity_address: string | null;
  details: Record<string, unknown>;
}
interface Lease {
  lease_id: string;
  address: string;
  state: string;
  revocation_reason: string | null;
}

/** Bodies that pass each route's schema, so only authentication stands between the cookie and the change. */
const VALID_BODIES: Record<string, unknown> = {
  '/v1/admin/identities': { address: 'csrf@acme.local', public_key: 'A'.repeat(43), key_uri: 'pkcs11:token=x;object=y' },
  '/v1/admin/identities/:address/tickets': {},
  '/v1/admin/backends': { name: 'csrf', type: 'postgres', connection_url: 'postgres://127.0.0.1:1/x' },
  '/v1/admin/grants': { subject: REVIEWER_ADDRESS, backend: BACKEND, role: 'readwrite', max_ttl_seconds: 60 },
  '/v1/admin/leases/revoke': { backend: BACKEND, reason: 'csrf' },
  '/v1/leases': { backend: BACKEND, role: 'readonly' },
  '/v1/leases/:id/renew': {},
  '/v1/enroll': { ticket: 'tkt_csrf' },
  '/v1/review/sessions': {},
};

describe('review API and sessions', () => {
  let review: ReviewEnv;
  let cookie: string;

  beforeAll(async () => {
    review = await startReviewEnv();
    cookie = await openSession(review.reviewer);
  });
  afterAll(async () => review?.close());

  const withCookie = (path: string, init: RequestInit = {}, pair = cookie) =>
    fetch(review.env.url + path, { ...init, headers: { ...(init.headers as Record<string, string>), cookie: pair } });
  const json = async <T>(path: string, pair = cookie): Promise<T> => {
    const response = await withCookie(path, {}, pair);
    expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200);
    return (await response.json()) as T;
  };
  const events = async (query: string) => (await json<{ events: Event[] }>(`/v1/review/audit?${query}`)).events;

  it('turns a reviewer proof into a one-time, short-lived login link and an HttpOnly SameSite=Strict cookie', async () => {
    const url = await loginUrl(review.reviewer);
    expect(url).toMatch(new RegExp(`^${review.env.url}/ui/login\\?code=rvc_[A-Za-z0-9_-]{43}$`));
    const first = await fetch(url, { redirect: 'manual' });
    expect(first.status).toBe(303);
    const setCookie = first.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^tessera_review=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=1800; HttpOnly; SameSite=Strict$/);

    const again = await fetch(url, { redirect: 'manual' });
    expect(again.status).toBe(401);
    expect(again.headers.get('content-type')).toContain('text/html');
    expect(again.headers.get('set-cookie')).toBeNull();
    expect(await again.text()).toContain('tessera review open');

    const late = await loginUrl(review.reviewer);
    review.env.clock.advance(61_000);
    try {
      expect((await fetch(late, { redirect: 'manual' })).status).toBe(401);
    } finally {
      review.env.clock.advance(-61_000);
    }

    const audited = await events('action=review.login&order=desc&limit=10');
    // A refused code names no one: refusals are counted in the window's summary, not one by one.
    expect(audited.filter((event) => event.outcome === 'denied')).toEqual([]);
    expect((await rejectionsSince(review.env, 0)).counts).toContainEqual(expect.objectContaining({ action: 'review.login', reason: 'session_invalid', count: 2 }));
    expect(audited.find((event) => event.outcome === 'success')).toMatchObject({ actor_address: REVIEWER_ADDRESS, identity_address: REVIEWER_ADDRESS });
    const created = await events('action=review.session_created&limit=1');
    expect(created[0]).toMatchObject({ actor_address: REVIEWER_ADDRESS, outcome: 'success' });
  });

  it('reads identities, leases, the audit log and the chain status with the session cookie, a reviewer proof or an admin proof', async () => {
    const { identities } = await json<{ identities: { address: string; status: string; revocation_reason: string | null }[] }>('/v1/review/identities');
    expect(identities.find((identity) => identity.address === REVOKED_ADDRESS)).toMatchObject({ status: 'revoked', revocation_reason: XSS_REASON });
    const { leases } = await json<{ leases: Lease[] }>(`/v1/review/leases?identity=${REVOKED_ADDRESS}`);
    expect(leases.map((lease) => [lease.lease_id, lease.state, lease.revocation_reason])).toEqual(review.revokedLeaseIds.map((id) => [id, 'revoked', 'identity_revoked']));
    const chain = await json<{ ok: boolean; to: number; head: { seq: number }; last_checkpoint: { seq: number } | null; proofs: number }>('/v1/review/chain');
    expect(chain).toMatchObject({ ok: true, to: chain.head.seq });
    expect(chain.last_checkpoint).not.toBeNull();
    expect(chain.proofs).toBeGreaterThan(5);

    for (const who of [review.reviewer, review.admin]) {
      expect((await who.expect<{ leases: Lease[] }>(200, 'GET', `/v1/review/leases?state=active`)).leases.map((lease) => lease.lease_id)).toEqual([review.activeLeaseId]);
    }
    const unauthenticated = await fetch(`${review.env.url}/v1/review/audit`);
    expect(unauthenticated.status).toBe(401);
    expect(await unauthenticated.json()).toMatchObject({ error: 'session_invalid' });
    expect((await withCookie('/v1/review/audit', {}, 'tessera_review=forged')).status).toBe(401);
  });

  it('filters the audit log by identity, lease, backend, action, outcome and time, both ways', async () => {
    const [leaseId] = review.revokedLeaseIds;
    expect((await events(`lease=${leaseId}`)).map((event) => event.action)).toEqual(['lease.granted', 'lease.revoked']);
    const onBackend = await events(`backend=${BACKEND}&limit=1000`);
    expect(new Set(onBackend.map((event) => event.action))).toEqual(new Set(['backend.added', 'grant.created', 'lease.granted', 'lease.denied', 'lease.revoked']));
    const denied = await events(`identity=${REVOKED_ADDRESS}&outcome=denied`);
    expect(denied.map((event) => [event.action, event.reason])).toEqual([
      ['lease.denied', 'no_grant'],
      ['lease.denied', 'ttl_exceeds_max'],
      ['request.forbidden', 'forbidden'],
      ['proof.rejected', 'identity_revoked'],
    ]);
    const newestFirst = await events(`identity=${REVOKED_ADDRESS}&order=desc&limit=2`);
    expect(newestFirst.map((event) => event.action)).toEqual(['proof.rejected', 'lease.revoked']);
    expect(newestFirst[1]!.seq).toBeLessThan(newestFirst[0]!.seq);
    const page = await events(`identity=${REVOKED_ADDRESS}&before=${newestFirst[1]!.seq}&order=desc&limit=1`);
    expect(page[0]!.seq).toBeLessThan(newestFirst[1]!.seq);

    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect(await events(`since=${future}`)).toEqual([]);
    expect((await events(`until=${future}&action=identity.revoked`)).map((event) => event.identity_address)).toEqual([REVOKED_ADDRESS]);
    const bad = await withCookie('/v1/review/audit?since=yesterday');
    expect(bad.status).toBe(400);
    // The admin API takes the same filters.
    const admin = await review.admin.expect<{ events: Event[] }>(200, 'GET', `/v1/admin/audit?lease=${leaseId}&backend=${BACKEND}`);
    expect(admin.events.map((event) => event.action)).toEqual(['lease.granted', 'lease.revoked']);
  });

  it("gives an identity's timeline: provisioned, ticket, enrolled, leases, denials, revocation", async () => {
    const timeline = await json<{ identity: { status: string }; leases: Lease[]; events: Event[]; truncated: boolean }>(`/v1/review/identities/${REVOKED_ADDRESS}/timeline`);
    expect(timeline.identity.status).toBe('revoked');
    expect(timeline.leases.map((lease) => lease.state)).toEqual(['revoked', 'revoked']);
    expect(timeline.truncated).toBe(false);
    expect(timeline.events.map((event) => event.action)).toEqual([
      'identity.registered',
      'ticket.issued',
      'ticket.redeemed',
      'identity.enrolled',
      'lease.granted',
      'lease.granted',
      'lease.denied',
      'lease.denied',
      'request.forbidden',
      'identity.revoked',
      'lease.revoked',
      'lease.revoked',
      'proof.rejected',
    ]);
    expect(timeline.events[0]).toMatchObject({ actor_address: 'admin@tessera.local' });
    expect(timeline.events.find((event) => event.action === 'identity.revoked')).toMatchObject({ reason: XSS_REASON, actor_address: 'admin@tessera.local' });
  });

  it('lets the session reach no admin route and no mutating route (CSRF: they ignore cookies)', async () => {
    const readOnly = (method: string, url: string) =>
      (method === 'GET' || method === 'HEAD') && (url.startsWith('/v1/review/') || url.startsWith('/ui') || url.startsWith('/.well-known/') || url === '/healthz' || url === '/openapi.json');
    const guarded = routesOf(review.env.broker.app).filter(([method, url]) => !readOnly(method, url));
    expect(guarded.length).toBeGreaterThan(15);
    expect(guarded).toContainEqual(['POST', '/v1/review/sessions']);
    for (const [method, url] of guarded) {
      const path = url.replace(':address', ACTIVE_ADDRESS).replace(':name', BACKEND).replace(':id', review.activeLeaseId);
      const body = method === 'POST' ? JSON.stringify(VALID_BODIES[url] ?? { reason: 'csrf' }) : undefined;
      const response = await withCookie(path, { method, body, headers: body ? { 'content-type': 'application/json' } : {} });
      expect([401, 403], `${method} ${path} with the session cookie answered ${response.status}`).toContain(response.status);
    }
    // A reviewer's own proof does not open admin routes either.
    expect(await review.reviewer.send('GET', '/v1/admin/identities')).toMatchObject({ status: 403, body: { error: 'forbidden' } });
    expect(await review.reviewer.send('POST', `/v1/admin/identities/${ACTIVE_ADDRESS}/revoke`, { reason: 'x' })).toMatchObject({ status: 403 });
    expect(await review.reviewer.send('POST', '/v1/admin/leases/revoke', { backend: BACKEND, reason: 'x' })).toMatchObject({ status: 403 });
    // Nothing changed.
    expect((await json<{ leases: Lease[] }>('/v1/review/leases?state=active')).leases.map((lease) => lease.lease_id)).toEqual([review.activeLeaseId]);
    expect((await json<{ identities: { status: string }[] }>('/v1/review/identities?status=revoked')).identities).toHaveLength(1);
  });

  it('renders the page with every attacker-influenced value escaped and a strict CSP', async () => {
    const response = await withCookie('/ui');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(response.headers.get('content-security-policy')).not.toContain('unsafe');
    const page = await response.text();
    expect(page).toContain('&lt;img src=x onerror=alert(1)&gt; compromised');
    expect(page).toContain('&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;');
    expect(page).not.toMatch(/<img|<script|onerror=alert\(1\)>/);
    expect((await withCookie(`/ui/identities/${REVOKED_ADDRESS}`)).status).toBe(200);
    expect((await fetch(`${review.env.url}/ui`)).status).toBe(401);
  });

  // Five CLI processes, each a Node start-up that loads the key store: seconds apiece on a busy machine.
  // What the broker answers (audit filters, timelines, leases) is checked over HTTP above.
  it('runs the review commands of the CLI: provision --role reviewer, review open, audit list, identity show', { timeout: 120_000 }, async () => {
    const run: CliOptions = { env: review.env.cliEnv };
    const provisioned = await cliJson<ProvisionResult>(['provision', 'second-auditor@acme.local', '--role', 'reviewer', '--json'], run);
    await (await review.env.clientFor(provisioned.key_uri)).request('POST', '/v1/enroll', { ticket: provisioned.ticket });
    const link = await cliJson<{ login_url: string }>(['review', 'open', '--key', provisioned.key_uri, '--json'], run);
    expect((await fetch(link.login_url, { redirect: 'manual' })).status).toBe(303);

    // As the reviewer (its key signs); the lease filter's answer is checked over HTTP above.
    const human = await runCli(['audit', 'list', '--identity', REVOKED_ADDRESS, '--outcome', 'denied', '--since', '1h', '--key', provisioned.key_uri], run);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^SEQ\s+AT\s+ACTION\s+OUTCOME\s+ACTOR\s+IDENTITY\s+REASON$/m);
    expect(human.stdout).toMatch(/lease\.denied\s+denied\s+rogue-bot@acme\.local\s+rogue-bot@acme\.local\s+no_grant/);

    // The same timeline as JSON is the HTTP timeline test above.
    const text = await runCli(['identity', 'show', REVOKED_ADDRESS], run);
    expect(text.stdout).toContain('timeline:');
    expect(text.stdout).toMatch(/identity\.revoked\s+success\s+admin@tessera\.local/);
  });

  it('ends a session when its identity is revoked, and when it expires', async () => {
    const second = await enrolledReviewer(review.env, 'short-lived@acme.local');
    const pair = await openSession(second);
    expect((await withCookie('/v1/review/chain', {}, pair)).status).toBe(200);
    await review.admin.expect(200, 'POST', '/v1/admin/identities/short-lived@acme.local/revoke', { reason: 'left the team' });
    expect((await withCookie('/v1/review/chain', {}, pair)).status).toBe(401);

    const adminPair = await openSession(review.admin); // admins may review too
    expect((await withCookie('/v1/review/chain', {}, adminPair)).status).toBe(200);
    review.env.clock.advance(31 * 60_000);
    try {
      expect((await withCookie('/v1/review/chain', {}, adminPair)).status).toBe(401);
      expect((await withCookie('/ui', {}, adminPair)).status).toBe(401);
    } finally {
      review.env.clock.advance(-31 * 60_000);
    }
  });
});
