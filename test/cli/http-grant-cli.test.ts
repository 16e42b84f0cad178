/**
 * `tessera grant --scope --constraint` on an HTTP API backend, through the compiled CLI in child
 * processes: the granted constraint is what the credential proxy enforces on the official Stripe
 * client, and a grant naming an unknown scope or constraint, a bad value or one constraint twice,
 * fails with a clear error, exit code 1 and nothing stored.
 */
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiCredential, BackendView, GrantView, LeaseResponse } from '@tessera-broker/sdk/wire';
import type { TestBroker } from '../support/broker.js';
import { type CliOptions, cliFails, cliJson } from '../support/cli.js';
import { type FakeUpstream, startFakeStripe } from '../support/fake-upstream.js';
import { STRIPE_SECRET, startProxyBroker, stripeFor } from '../proxy/support.js';

const ADDRESS = 'refund-cli@test.local';

// Each CLI run is a Node process that loads the key store: seconds apiece on a busy machine.
describe('tessera grant --scope --constraint (HTTP API backends)', { timeout: 120_000 }, () => {
  let broker: TestBroker;
  let upstream: FakeUpstream;
  let dir: string;
  let run: CliOptions;
  let keyUri: string;

  // What is stored, read over the admin API: a CLI process per check would only add minutes.
  const grants = async () => (await broker.admin.request<{ grants: GrantView[] }>('GET', '/v1/admin/grants?backend=payments')).grants;
  const grantsCreated = async () => (await broker.admin.request<{ events: unknown[] }>('GET', '/v1/admin/audit?action=grant.created&limit=1000')).events.length;

  beforeAll(async () => {
    upstream = await startFakeStripe(STRIPE_SECRET);
    broker = await startProxyBroker();
    dir = await mkdtemp(join(tmpdir(), 'tessera-http-grant-cli-'));
    const keyFile = join(dir, 'stripe.key');
    writeFileSync(keyFile, `${STRIPE_SECRET}\n`, { mode: 0o600 });
    run = { cwd: dir, env: broker.cliEnv };
    const agent = await broker.provision(ADDRESS, { team: 'payments' });
    await (await broker.clientFor(agent.key_uri)).request('POST', '/v1/enroll', { ticket: agent.ticket });
    keyUri = agent.key_uri;
    const added = await cliJson<BackendView>(['backend', 'add', 'stripe', 'payments', '--secret-key-file', keyFile, '--upstream-url', upstream.url, '--json'], run);
    expect(added).toMatchObject({ name: 'payments', type: 'stripe', roles: expect.arrayContaining(['refunds:write', 'billing:read']) });
  }, 180_000);

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a refunds:write grant with max_amount=5000: the lease refunds 4000 and is refused 6000', async () => {
    const grant = await cliJson<GrantView>(['grant', 'attr:team=payments', 'payments', '--scope', 'refunds:write', '--constraint', 'max_amount=5000', '--max-ttl', '1h', '--json'], run);
    expect(grant).toMatchObject({ subject: 'attr:team=payments', backend: 'payments', role: 'refunds:write', constraints: { max_amount: '5000' }, max_ttl_seconds: 3600 });

    const lease = await cliJson<LeaseResponse<ApiCredential>>(['lease', 'payments', '--role', 'refunds:write', '--key', keyUri, '--json'], run);
    expect(lease).toMatchObject({ backend: 'payments', role: 'refunds:write', credential: { api_key: expect.stringMatching(/^tsk_/) } });
    const stripe = stripeFor(lease.credential);

    const before = upstream.seen.length;
    const refused = await stripe.refunds.create({ charge: 'ch_1', amount: 6000 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(Stripe.errors.StripePermissionError);
    expect(refused).toMatchObject({ statusCode: 403, code: 'constraint_violation', message: 'Tessera: refund amount 6000 exceeds max_amount 5000' });
    expect(upstream.seen.length).toBe(before);

    expect(await stripe.refunds.create({ charge: 'ch_1', amount: 4000 })).toMatchObject({ object: 'refund', amount: 4000, charge: 'ch_1' });
    expect(upstream.seen.slice(before)).toEqual([expect.objectContaining({ method: 'POST', path: '/v1/refunds', authorization: `Bearer ${STRIPE_SECRET}` })]);
  });

  // The broker's validation of scopes and constraints, over the admin API (a CLI process per case
  // would only add minutes): the messages the CLI prints, and nothing stored.
  it.each([
    ['an unknown scope', 'charges:write', { max_amount: '5000' }, /^Backend payments has no scope "charges:write" \(known: refunds:write, billing:read\)/],
    ['an unknown constraint', 'refunds:write', { max_refund: '5000' }, /^Scope "refunds:write" has no constraint "max_refund" \(known: max_amount\)/],
    ['a constraint the scope does not take', 'billing:read', { max_amount: '5000' }, /^Scope "billing:read" has no constraint "max_amount"/],
    ['a non-numeric max_amount', 'refunds:write', { max_amount: 'lots' }, /^Constraint max_amount: must be a positive integer/],
    ['a negative max_amount', 'refunds:write', { max_amount: '-5' }, /^Constraint max_amount: must be a positive integer/],
    ['an empty max_amount', 'refunds:write', { max_amount: '' }, /^Constraint max_amount: must be a positive integer/],
  ])('%s is refused invalid_request over HTTP, and no grant is stored', async (_, role, constraints, message) => {
    const [grantsBefore, createdBefore] = [await grants(), await grantsCreated()];
    await expect(broker.admin.request('POST', '/v1/admin/grants', { subject: ADDRESS, backend: 'payments', role, constraints, max_ttl_seconds: 3600 })).rejects.toMatchObject({
      status: 400,
      code: 'invalid_request',
      message: expect.stringMatching(message),
    });
    expect(await grants()).toEqual(grantsBefore);
    expect(await grantsCreated()).toBe(createdBefore);
  });

  // Through the CLI: the two mistakes it catches itself, and one the broker refuses (passed on as is).
  it.each([
    ['an unknown scope', ['--scope', 'charges:write', '--constraint', 'max_amount=5000'], /^tessera: invalid_request: Backend payments has no scope "charges:write" \(known: refunds:write, billing:read\)/m],
    ['a constraint without a value', ['--scope', 'refunds:write', '--constraint', 'max_amount'], /^tessera: invalid_request: --constraint expects <name>=<value> \(got "max_amount"\)/m],
    [
      'a constraint given twice',
      ['--scope', 'refunds:write', '--constraint', 'max_amount=5000', '--constraint', 'max_amount=999999'],
      /^tessera: invalid_request: --constraint max_amount is given more than once; give each constraint once\./m,
    ],
  ])('tessera grant with %s fails with a clear error, exit code 1, and stores no grant', async (_, args, message) => {
    const [grantsBefore, createdBefore] = [await grants(), await grantsCreated()];
    const result = await cliFails(['grant', ADDRESS, 'payments', ...args, '--max-ttl', '1h'], run);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(await grants()).toEqual(grantsBefore);
    expect(await grantsCreated()).toBe(createdBefore);
  });
});
