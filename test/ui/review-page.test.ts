/**
 * The review page in a real browser: Debian's /usr/bin/chromium driven by playwright-core, against
 * a broker seeded through its APIs. A reviewer logs in with a login link, finds the revoked
 * identity and its revoked leases, sees the verified audit chain, and cannot reach any admin action.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrolledAgent } from '../support/lease-env.js';
import { ACTIVE_ADDRESS, BACKEND, loginUrl, REVOKED_ADDRESS, type ReviewEnv, startReviewEnv, XSS_REASON } from '../support/review-env.js';

const SCREENSHOT_PATH = join(tmpdir(), 'tessera-review-page.png');
const VIEWPORT = { width: 1440, height: 900 };

/** Share of pixels within `tolerance` of an RGB colour. */
function colourShare(png: PNG, [r, g, b]: readonly [number, number, number], tolerance = 6): number {
  let hits = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    if (Math.abs(png.data[i]! - r) <= tolerance && Math.abs(png.data[i + 1]! - g) <= tolerance && Math.abs(png.data[i + 2]! - b) <= tolerance) hits += 1;
  }
  return hits / (png.width * png.height);
}

function luminanceStdDev(png: PNG): number {
  let sum = 0;
  let squares = 0;
  const count = png.width * png.height;
  for (let i = 0; i < png.data.length; i += 4) {
    const y = 0.2126 * png.data[i]! + 0.7152 * png.data[i + 1]! + 0.0722 * png.data[i + 2]!;
    sum += y;
    squares += y * y;
  }
  return Math.sqrt(squares / count - (sum / count) ** 2);
}

describe('review page in headless Chromium', () => {
  let review: ReviewEnv;
  let browser: Browser;
  let page: Page;
  const dialogs: string[] = [];

  beforeAll(async () => {
    [review, browser] = await Promise.all([
      startReviewEnv(),
      chromium.launch({
        executablePath: '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      }),
    ]);
    page = await (await browser.newContext({ viewport: VIEWPORT })).newPage();
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
  });
  afterAll(async () => {
    await browser?.close();
    await review?.close();
  });

  it('logs in with a one-time link and shows the revoked identity, its revoked leases and the verified chain', async () => {
    await page.goto(await loginUrl(review.reviewer));
    expect(new URL(page.url()).pathname).toBe('/ui');
    await expect(page.title()).resolves.toBe('Overview · Tessera review');
    expect(await page.locator('.who').innerText()).toMatch(/auditor@acme\.local\s+reviewer\s+read-only/);

    const identityRow = page.locator('#identities tbody tr', { hasText: REVOKED_ADDRESS });
    await expect(identityRow.locator('.badge').innerText()).resolves.toBe('revoked');
    await expect(identityRow.locator('.reason').innerText()).resolves.toBe(XSS_REASON);
    for (const leaseId of review.revokedLeaseIds) {
      const row = page.locator('#revoked-leases tbody tr', { hasText: leaseId });
      await expect(row.innerText()).resolves.toMatch(new RegExp(`${REVOKED_ADDRESS}\\s+${BACKEND}\\s+readonly\\s+revoked.*identity_revoked`, 's'));
    }
    await expect(page.locator('#active-leases tbody tr').allInnerTexts()).resolves.toEqual([expect.stringContaining(ACTIVE_ADDRESS)]);
    await expect(page.locator('#revocations tbody tr').innerText()).resolves.toContain(REVOKED_ADDRESS);
    expect(await page.locator('#denials tbody tr').count()).toBe(4);
    await expect(page.locator('#verification .badge').innerText()).resolves.toBe('chain verified');
    expect(await page.locator('#verification').innerText()).toMatch(/last signed checkpoint at seq \d+/);
    // The attacker-influenced reason and attributes stayed text.
    expect(await page.locator('img, script').count()).toBe(0);
    expect(dialogs).toEqual([]);
  });

  it("follows the identity to its timeline and filters the audit log like the CLI", async () => {
    await page.locator('#identities a', { hasText: REVOKED_ADDRESS }).click();
    expect(decodeURIComponent(new URL(page.url()).pathname)).toBe(`/ui/identities/${REVOKED_ADDRESS}`);
    const actions = await page.locator('#timeline tbody tr td:nth-child(3)').allInnerTexts();
    expect(actions.slice(0, 4)).toEqual(['identity.registered', 'ticket.issued', 'ticket.redeemed', 'identity.enrolled']);
    expect(actions).toEqual(expect.arrayContaining(['lease.granted', 'lease.denied', 'identity.revoked', 'lease.revoked', 'proof.rejected']));
    expect(await page.locator('#leases tbody tr .badge').allInnerTexts()).toEqual(['revoked', 'revoked']);

    await page.goto(`${review.env.url}/ui/audit`);
    await page.fill('input[name=identity]', REVOKED_ADDRESS);
    await page.selectOption('select[name=outcome]', 'denied');
    await page.selectOption('select[name=order]', 'asc');
    await page.click('button[type=submit]');
    expect(new URL(page.url()).searchParams.get('outcome')).toBe('denied');
    expect(await page.locator('#events tbody tr td:nth-child(7)').allInnerTexts()).toEqual(['no_grant', 'ttl_exceeds_max', 'forbidden', 'identity_revoked']);
    await expect(page.locator('input[name=identity]').inputValue()).resolves.toBe(REVOKED_ADDRESS);
  });

  it('offers no admin action, and the session cannot reach one from the page either', async () => {
    await page.goto(`${review.env.url}/ui`);
    expect(await page.locator('form[method=post], form[method=POST], input[type=submit]').count()).toBe(0);
    const links = await page.locator('a[href]').evaluateAll((anchors) => anchors.map((anchor) => anchor.getAttribute('href')!));
    expect(links.filter((link) => !link.startsWith('/ui') && !link.startsWith('#'))).toEqual([]);
    expect(await page.evaluate('document.cookie')).toBe(''); // HttpOnly

    const attempts: [string, string, unknown?][] = [
      ['GET', '/v1/review/chain'], // the cookie does ride along on these fetches...
      ['GET', '/v1/admin/identities'],
      ['GET', '/v1/admin/audit/export'],
      ['POST', `/v1/admin/identities/${ACTIVE_ADDRESS}/revoke`, { reason: 'from the page' }],
      ['POST', '/v1/admin/leases/revoke', { backend: BACKEND, reason: 'from the page' }],
      ['DELETE', `/v1/leases/${review.activeLeaseId}`],
      ['POST', '/v1/review/sessions', {}],
    ];
    const statuses = await page.evaluate(
      (requests) =>
        Promise.all(
          requests.map(async ([method, path, body]) => {
            const init = body === undefined ? { method } : { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } };
            return (await fetch(path, init)).status;
          }),
        ),
      attempts,
    );
    expect(statuses[0]).toBe(200);
    expect(statuses.slice(1).map((status) => [401, 403].includes(status))).toEqual(attempts.slice(1).map(() => true));
    const { leases } = await review.admin.expect<{ leases: { lease_id: string }[] }>(200, 'GET', '/v1/admin/leases?state=active');
    expect(leases.map((lease) => lease.lease_id)).toEqual([review.activeLeaseId]);
  });

  it('renders a readable page: screenshot checked for size, contrast and the status colours', async () => {
    await page.goto(`${review.env.url}/ui`);
    await page.screenshot({ path: SCREENSHOT_PATH, fullPage: true });
    const png = PNG.sync.read(await page.screenshot({ fullPage: true }));
    expect(png.width).toBe(VIEWPORT.width);
    expect(png.height).toBeGreaterThanOrEqual(VIEWPORT.height);
    expect(luminanceStdDev(png)).toBeGreaterThan(20); // not blank
    expect(colourShare(png, [0x17, 0x20, 0x33])).toBeGreaterThan(0.005); // the header bar
    expect(colourShare(png, [0xfd, 0xe4, 0xe4])).toBeGreaterThan(0.0005); // "revoked"/"denied" badges
    expect(colourShare(png, [0xe3, 0xf5, 0xe9])).toBeGreaterThan(0.0002); // "active"/"chain verified" badges
  });

  it('counts and shows a suspended identity (a suspected clone) apart from active and revoked ones', async () => {
    const stats = async () => Object.fromEntries((await page.locator('.stat').allInnerTexts()).map((text) => [text.replace(/^\d+\s*/, ''), Number.parseInt(text, 10)]));
    await page.goto(await loginUrl(review.reviewer));
    const before = await stats();
    const cloned = await enrolledAgent(review.env, 'cloned-bot@acme.local');
    expect((await cloned.startSession({ generation: 1 })).reply.status).toBe(201);
    expect((await cloned.startSession({ generation: 1 })).reply).toMatchObject({ status: 403, body: { error: 'identity_suspended' } });

    await page.goto(`${review.env.url}/ui`);
    expect(await stats()).toMatchObject({ 'suspended identities': 1, 'active identities': before['active identities'], 'revoked identities': before['revoked identities'] });
    const row = page.locator('#identities tbody tr', { hasText: 'cloned-bot@acme.local' });
    await expect(row.locator('.badge').innerText()).resolves.toBe('suspended');
    expect(await row.locator('.badge').getAttribute('class')).toContain('badge-bad');
  });
});
