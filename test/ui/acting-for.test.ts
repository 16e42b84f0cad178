/**
 * The review page shows whom a lease acts for, in headless Chromium (Debian's /usr/bin/chromium
 * via playwright-core): a user's token from a local jose issuer went to an agent, which delegated
 * to a sub-agent, which leased; the audit page names the user and the chain user -> agent ->
 * sub-agent on those events, filters by "Acting for" like `tessera audit list --on-behalf-of`, and
 * renders an issuer-chosen `sub` as text.
 */
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type LocalIssuer, startLocalIssuer } from '../support/issuer.js';
import { adminAgent, enrolledAgent, seedUpstream, type TestAgent } from '../support/lease-env.js';
import { createTestDatabase } from '../support/postgres.js';
import { enrolledReviewer, loginUrl } from '../support/review-env.js';

const AGENT = 'support-bot@acme.local';
const SUB_AGENT = 'triage@acme.local';
const HOSTILE_SUB = '<img src=x onerror=alert(3)>';

describe('review page: acting for a user, in headless Chromium', () => {
  let env: TestBroker;
  let issuer: LocalIssuer;
  let upstream: { url: string; drop(): Promise<void> };
  let reviewer: TestAgent;
  let browser: Browser;
  let page: Page;
  let leaseId: string;
  const dialogs: string[] = [];

  beforeAll(async () => {
    upstream = await createTestDatabase(inject('postgresUrl'));
    await seedUpstream(upstream.url);
    [env, issuer, browser] = await Promise.all([
      startTestBroker(),
      startLocalIssuer('ES256'),
      chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] }),
    ]);
    const admin = await adminAgent(env);
    await admin.expect(201, 'POST', '/v1/admin/backends', { name: 'db', type: 'postgres', connection_url: upstream.url });
    await admin.expect(201, 'POST', '/v1/admin/trust/issuers', { issuer: issuer.issuer, audience: issuer.audience, jwks_url: issuer.jwksUrl });
    await admin.expect(201, 'POST', '/v1/admin/grants', { subject: AGENT, backend: 'db', role: 'readonly', max_ttl_seconds: 600, required_user_claims: { groups: 'support' } });
    const agent = await enrolledAgent(env, AGENT);
    const subAgent = await enrolledAgent(env, SUB_AGENT);

    const actFor = async (sub: string) => {
      const token = await issuer.token(sub, env.clock.now(), { claims: { groups: ['support'] } });
      return agent.expect<{ delegation_id: string }>(201, 'POST', '/v1/delegations/user', { token, backend: 'db', role: 'readonly', ttl_seconds: 600, purpose: `ticket of ${sub}` });
    };
    const forAlice = await actFor('alice');
    await agent.expect(201, 'POST', '/v1/delegations', { delegatee: SUB_AGENT, backend: 'db', role: 'readonly', ttl_seconds: 300, purpose: 'look up the order', parent: forAlice.delegation_id });
    leaseId = (await subAgent.lease('db', 'readonly')).lease_id;
    await actFor(HOSTILE_SUB);

    reviewer = await enrolledReviewer(env);
    page = await (await browser.newContext({ viewport: { width: 1440, height: 900 } })).newPage();
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.goto(await loginUrl(reviewer));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await env?.close();
    await issuer?.close();
    await upstream?.drop();
  });

  const rows = () => page.locator('#events tbody tr');
  const cell = (action: string) => page.locator('#events tbody tr', { hasText: action }).locator('td.chain');

  it('names the user and the chain user -> agent -> sub-agent on the lease event', async () => {
    await page.goto(`${env.url}/ui/audit?lease=${leaseId}`);
    const granted = page.locator('#events tbody tr', { hasText: 'lease.granted' }).locator('td.chain');
    await expect(granted.locator('.acting-for').innerText()).resolves.toMatch(new RegExp(`^acting for alice\\s+${issuer.issuer.replace(/[.:/]/g, '\\$&')}$`));
    await expect(granted.locator('ol.act-chain li').allInnerTexts()).resolves.toEqual(['alice', AGENT, SUB_AGENT]);
    // The agents link to their timelines, the user to the events done for them.
    await expect(granted.locator('ol.act-chain a').evaluateAll((links) => links.map((link) => link.getAttribute('href')))).resolves.toEqual([
      `/ui/identities/${encodeURIComponent(AGENT)}`,
      `/ui/identities/${encodeURIComponent(SUB_AGENT)}`,
    ]);
    await expect(granted.locator('.acting-for a').getAttribute('href')).resolves.toBe('/ui/audit?on_behalf_of=alice');
  });

  it('filters by "Acting for" like --on-behalf-of: only the events done for that user', async () => {
    await page.goto(`${env.url}/ui/audit`);
    await page.fill('input[name=on_behalf_of]', 'alice');
    await page.selectOption('select[name=order]', 'asc');
    await page.click('button[type=submit]');
    expect(new URL(page.url()).searchParams.get('on_behalf_of')).toBe('alice');
    await expect(rows().locator('td:nth-child(3)').allInnerTexts()).resolves.toEqual(['delegation.created', 'delegation.created', 'lease.granted']);
    for (const chain of await rows().locator('td.chain .acting-for strong').allInnerTexts()) expect(chain).toBe('alice');
    // Events outside any chain have an empty "Acting for" cell.
    await page.goto(`${env.url}/ui/audit?action=grant.created`);
    await expect(cell('grant.created').innerText()).resolves.toBe('');
  });

  it('renders a hostile sub from the issuer as text', async () => {
    await page.goto(`${env.url}/ui/audit?on_behalf_of=${encodeURIComponent(HOSTILE_SUB)}`);
    await expect(cell('delegation.created').locator('.acting-for strong').innerText()).resolves.toBe(HOSTILE_SUB);
    expect(await page.locator('img, script').count()).toBe(0);
    expect(dialogs).toEqual([]);
  });
});
