/**
 * The README's walkthrough, run from README.md's own code blocks as a reader runs them: the sh
 * blocks in order in one bash session (`set -euo pipefail`), `tessera` on PATH as the built CLI, a
 * temp data dir, the broker started as `npm start` does, a real PostgreSQL database (its admin DSN
 * in PG_ADMIN_URL) and local stand-ins for Stripe and OpenAI (STRIPE_UPSTREAM, OPENAI_UPSTREAM).
 * After each step the observable outcome is checked: upstream, database and broker, not only output.
 */
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { OPENAI_SECRET, STRIPE_SECRET } from '../proxy/support.js';
import { CLI_ENTRY, cleanEnv, REPO_ROOT, runCli, serveOnFreePorts, stopAllCli } from '../support/cli.js';
import { type FakeOpenAI, type FakeUpstream, startFakeOpenAI, startFakeStripe } from '../support/fake-upstream.js';
import { leaseRolesOf } from '../support/lease-env.js';
import { createAdminRole, createTestDatabase, withClient } from '../support/postgres.js';
import { type ReadmeBlock, sectionBlocks, ShellSession } from './readme-blocks.js';

const ADDRESS = 'billing-bot@acme.local';
const ORDERS = 3;
const blocks = sectionBlocks(join(REPO_ROOT, 'README.md'), 'Walkthrough');

/** A block is a few CLI processes, each a Node start-up that opens the token: seconds apiece here. */
const BLOCK_TIMEOUT_MS = 240_000;

let work: string;
let shell: ShellSession;
let database: { url: string; drop(): Promise<void> };
let stripe: FakeUpstream;
let openai: FakeOpenAI;
let brokerUrl: string;
let proxyUrl: string;

/** Login roles leased from orders-db that still exist in our database's groups (roles are cluster-wide). */
const leaseLogins = () => leaseRolesOf(database.url, 'orders-db');

const refundsSeen = () => stripe.seen.filter((request) => request.path === '/v1/refunds');

/** The outcome of each named step, checked right after its block ran. */
const checks: Record<string, (output: string) => Promise<void> | void> = {
  enroll(output) {
    expect(output).toContain(ADDRESS);
  },
  async 'postgres-backend'() {
    expect(await leaseLogins()).toEqual([]);
  },
  async 'postgres-lease'(output) {
    // psql logged in as the leased role (not the admin) and read the admin's table.
    const row = /^ (\S+) +\| +(\d+)$/m.exec(output);
    expect(row, output).not.toBeNull();
    expect(row![1]).not.toMatch(/^tessera_admin_/);
    expect(Number(row![2])).toBe(ORDERS);
    expect(output).toMatch(/renewed|expires/i);
    expect(await leaseLogins()).toEqual([]); // revoked: the role is gone
  },
  'http-backends'(output) {
    expect(output).toMatch(/\bpayments\b/);
    expect(output).toMatch(/\bllm\b/);
    expect(refundsSeen()).toEqual([]); // nothing is called upstream before a lease
  },
  'http-lease'(output) {
    // The refund within max_amount reached Stripe with the real key; the one over it never did.
    expect(refundsSeen()).toEqual([expect.objectContaining({ method: 'POST', authorization: `Bearer ${STRIPE_SECRET}` })]);
    expect(new URLSearchParams(refundsSeen()[0]!.body).get('amount')).toBe('4000');
    expect(output).toContain('"amount":4000');
    expect(output).toContain('exceeds max_amount 5000');
    const chats = openai.seen.filter((request) => request.path === '/v1/chat/completions');
    expect(chats).toEqual([expect.objectContaining({ method: 'POST', authorization: `Bearer ${OPENAI_SECRET}` })]);
    expect(output).toContain('Hello world');
    for (const request of [...stripe.seen, ...openai.seen]) expect(request.authorization).not.toMatch(/tsk_/);
  },
  async sdk(output) {
    const printed = /^(lse_\S+): connected as (\S+)$/m.exec(output);
    expect(printed, output).not.toBeNull();
    expect(await leaseLogins()).toEqual([]); // the example revoked its lease
  },
  async run(output) {
    expect(output).toMatch(new RegExp(`^ \\S+ +\\| +${ORDERS}$`, 'm'));
    // OPENAI_BASE_URL came with /v1 and the call reached OpenAI with the real key.
    // (backend add checked the key with a call of its own; the README's call is curl's.)
    const fromCurl = openai.seen.filter((request) => request.path === '/v1/models' && request.headers['user-agent']?.startsWith('curl/'));
    expect(fromCurl).toEqual([expect.objectContaining({ method: 'GET', authorization: `Bearer ${OPENAI_SECRET}` })]);
    expect(output).toContain('gpt-4o-mini');
    expect(output).toContain(`Stripe at ${proxyUrl}`);
    expect(await leaseLogins()).toEqual([]); // tessera run revoked its lease when psql exited
  },
  async review(output) {
    expect(output).toMatch(/ lease\.granted +success +billing-bot@acme\.local /);
    expect(output).toMatch(/ proxy\.refused +denied +billing-bot@acme\.local /); // the 6000 refund
    expect(output).toMatch(/^OK: \d+ events/m); // audit verify
    const login = new RegExp(`^${brokerUrl}/ui/login\\?code=rvc_[A-Za-z0-9_-]{43}$`, 'm').exec(output);
    expect(login, output).not.toBeNull();
    // Opened as a browser would: a session cookie, and the page lists the agent.
    const opened = await fetch(login![0], { redirect: 'manual' });
    expect(opened.status).toBe(303);
    const cookie = opened.headers.get('set-cookie')!.split(';')[0]!;
    const page = await fetch(`${brokerUrl}/ui`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(ADDRESS);
    // The code is one use.
    expect((await fetch(login![0], { redirect: 'manual' })).status).not.toBe(303);
  },
  async revoke(output) {
    expect(output).toMatch(/identity_revoked/);
    expect(output).toContain(`refused: ${ADDRESS} is revoked`);
    expect(refundsSeen()).toHaveLength(1); // the held Stripe token stopped at the proxy
    expect(await leaseLogins()).toEqual([]); // the login held at revocation is gone
  },
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tessera-readme-'));
  const dataDir = join(work, 'data');

  // The reader's database: an admin role without superuser that owns the orders table.
  database = await createTestDatabase(inject('postgresUrl'));
  const admin = await createAdminRole(database.url);
  await withClient(database.url, (client) => client.query(`ALTER DATABASE ${new URL(database.url).pathname.slice(1)} OWNER TO ${admin.name}`));
  await withClient(admin.url, (client) => client.query(`CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, ${ORDERS})`));

  stripe = await startFakeStripe(STRIPE_SECRET);
  openai = await startFakeOpenAI({ apiKey: OPENAI_SECRET, adminKey: 'sk-admin-unused', projectId: 'proj_unused' });
  writeFileSync(join(work, 'stripe.key'), `${STRIPE_SECRET}\n`, { mode: 0o600 });
  writeFileSync(join(work, 'openai.key'), `${OPENAI_SECRET}\n`, { mode: 0o600 });
  // The reader works in the checkout: agent.mjs resolves @tessera-broker/sdk and pg from there.
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(work, 'node_modules'));

  // `tessera` on PATH, as the README's alias makes it.
  const bin = join(work, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'tessera'), `#!/bin/sh\nexec '${process.execPath}' '${CLI_ENTRY}' "$@"\n`);
  chmodSync(join(bin, 'tessera'), 0o755);

  // `npm start`: init, then serve (here on free ports, which the reader's shell learns from the environment).
  const init = await runCli(['init'], { cwd: work, env: { TESSERA_DATA_DIR: dataDir }, timeoutMs: 120_000 });
  expect(init.code, init.stderr).toBe(0);
  const serving = await serveOnFreePorts({ cwd: work, env: { TESSERA_DATA_DIR: dataDir } });
  brokerUrl = serving.url;
  proxyUrl = serving.proxyUrl;
  const brokerEnv = serving.env;

  const scriptDir = join(work, 'blocks');
  mkdirSync(scriptDir);
  shell = new ShellSession({
    cwd: work,
    scriptDir,
    env: cleanEnv({
      ...brokerEnv,
      TESSERA_URL: brokerUrl,
      PATH: `${bin}:${process.env.PATH}`,
      PG_ADMIN_URL: admin.url,
      STRIPE_UPSTREAM: stripe.url,
      OPENAI_UPSTREAM: openai.url,
    }),
  });
}, 300_000);

afterAll(async () => {
  await shell?.close();
  await stopAllCli();
  await stripe?.close();
  await openai?.close();
  await database?.drop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('README walkthrough', () => {
  const label = (block: ReadmeBlock) => `README.md:${block.line} ${block.action.kind === 'run' ? (block.action.step ?? 'sh') : `${block.action.kind} ${block.lang}`}`;
  let failed: string | undefined;

  it('names every step this test checks, each once', () => {
    const steps = blocks.flatMap((block) => (block.action.kind === 'run' && block.action.step ? [block.action.step] : []));
    expect(steps).toEqual(Object.keys(checks));
  });

  for (const block of blocks) {
    it(label(block), { timeout: BLOCK_TIMEOUT_MS + 60_000 }, async () => {
      if (block.action.kind === 'skip') return;
      if (block.action.kind === 'file') return writeFileSync(join(work, block.action.name), `${block.code}\n`);
      if (failed) throw new Error(`not run: the block at ${failed} failed`);
      try {
        const output = await shell.run(block.code, BLOCK_TIMEOUT_MS);
        if (block.action.step) await checks[block.action.step]!(output);
      } catch (error) {
        failed = label(block);
        throw error;
      }
    });
  }
});
