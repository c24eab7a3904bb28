import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulate, startSystem, waitForJob } from '../e2e/fixtures.ts';
import { request } from '../support/http.ts';
import { CHROMIUM, launchBrowser, loopbackPage } from './browser.ts';

const ADMIN = { username: 'operator', password: 'board-password-123' };
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

// Never skipped: `pnpm test` installs Chromium first (scripts/ensure-chromium.sh); without it this fails.
describe('Bull Board and /docs, opened in headless Chromium', () => {
  it('when the tests start, then Chromium is there to drive', () => {
    expect(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`).toBe(
      true,
    );
  });

  let system: Awaited<ReturnType<typeof startSystem>>;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let jobId: string;

  beforeAll(async () => {
    [system, browser] = await Promise.all([
      startSystem({ ADMIN_USER: ADMIN.username, ADMIN_PASSWORD: ADMIN.password }),
      launchBrowser(),
    ]);
    const submitted = await system.a.post('/v1/jobs', simulate({ durationMs: 50, steps: 2 }));
    expect(submitted.status).toBe(202);
    jobId = submitted.body.id;
    await waitForJob(system.a, jobId, (v) => v.status === 'completed');
  });
  afterAll(async () => {
    await browser?.close();
    await system?.stop();
  });

  it('when no credentials are sent, then the board answers 401 with a basic-auth challenge', async () => {
    const res = await request('GET', `${system.api.url}/admin/queues`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Basic /);
    const api = await request('GET', `${system.api.url}/admin/queues/api/queues`);
    expect(api.status).toBe(401);
  });

  it('when the password is wrong, then the board answers 401', async () => {
    const res = await request('GET', `${system.api.url}/admin/queues`, {
      headers: { authorization: basic(ADMIN.username, 'not-the-password') },
    });
    expect(res.status).toBe(401);
  });

  it('when the right credentials are sent, then the board answers 200, read-only, with job inputs redacted', async () => {
    const auth = { authorization: basic(ADMIN.username, ADMIN.password) };
    const page = await request('GET', `${system.api.url}/admin/queues`, { headers: auth });
    expect(page.status).toBe(200);
    const queues = await request(
      'GET',
      `${system.api.url}/admin/queues/api/queues?activeQueue=analyses&status=completed`,
      {
        headers: auth,
      },
    );
    expect(queues.status).toBe(200);
    const analyses = queues.body.queues.find((q: { name: string }) => q.name === 'analyses');
    expect(analyses.readOnlyMode).toBe(true);
    // Each queue says what it holds.
    expect(analyses.description).toMatch(/^Analysis jobs/);
    const webhooks = queues.body.queues.find((q: { name: string }) => q.name === 'webhooks');
    expect(webhooks.description).toMatch(/^Webhook deliveries/);
    const job = analyses.jobs.find((j: { id: string }) => j.id === jobId);
    expect(job.data.input).toMatch(/^\[redacted\] \(\d+ bytes\)$/);
    expect(job.data.tenant).toBe('a');
  });

  it('when an operator logs in with a browser, then the page lists the analyses queue and the completed job', async () => {
    const { page, context, offsite } = await loopbackPage(browser.browser, { httpCredentials: ADMIN });
    try {
      await page.goto(`${system.api.url}/admin/queues`);
      await expect
        .poll(() => page.getByText('analyses', { exact: true }).count(), { timeout: 15_000 })
        .toBeGreaterThan(0);
      await page.goto(`${system.api.url}/admin/queues/queue/analyses?status=completed`);
      await expect.poll(() => page.getByText(jobId).count(), { timeout: 15_000 }).toBeGreaterThan(0);
      expect(offsite).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('when /docs is opened in the browser (no network), then Swagger UI renders the API reference', async () => {
    const { page, context, offsite } = await loopbackPage(browser.browser);
    try {
      await page.goto(`${system.api.url}/docs`);
      await expect.poll(() => page.getByText('longhaul API').count(), { timeout: 15_000 }).toBeGreaterThan(0);
      await expect.poll(() => page.getByText('Submit a job').count(), { timeout: 15_000 }).toBeGreaterThan(0);
      expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(6);
      expect(offsite).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
