import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { ConsoleMessage } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_A, startSystem } from '../e2e/fixtures.ts';
import { launchBrowser, loopbackPage } from '../operator/browser.ts';
import { CLIENT_DIST } from '../support/client-build.ts';

/**
 * A web app's page: loads the built SDK (dist/index.js, as a bundler would ship it) from its own
 * origin, and drives a job on the API's origin. What it sees it writes into the page, for the test
 * to read: `?mode=run` submits a job and follows it to its result, then resumes the event stream
 * with Last-Event-ID; `?mode=read` only reads a job, to see whether the API lets this origin in.
 */
const PAGE = `<!doctype html>
<html>
  <head><meta charset="utf-8"><title>longhaul from a browser</title></head>
  <body>
    <p>job <span id="job"></span>: <span id="status">starting</span></p>
    <progress id="bar" max="100" value="0"></progress> <span id="step"></span>
    <p id="events"></p>
    <p id="location"></p>
    <pre id="result"></pre>
    <p id="resumed"></p>
    <p id="error"></p>
    <script type="module">
      import { createClient } from '/sdk.js';

      const params = new URLSearchParams(location.search);
      const api = params.get('api');
      const key = params.get('key');
      const client = createClient({ baseUrl: api, apiKey: key });
      const $ = (id) => document.getElementById(id);

      async function run() {
        const job = await client.submit(
          'simulate',
          { durationMs: 1500, steps: 5 },
          { idempotencyKey: 'browser-' + Date.now() + '-' + Math.random() },
        );
        $('job').textContent = job.id;
        const seen = [];
        let firstProgressId;
        const final = await client.waitFor(job.id, {
          onEvent: (event) => {
            seen.push(event.type);
            $('events').textContent = seen.join(' ');
            if (event.type === 'progress') {
              firstProgressId ??= event.id;
              $('bar').value = event.data.progress.percent;
              $('step').textContent = event.data.progress.step;
            }
            $('status').textContent = event.data.status ?? $('status').textContent;
          },
        });
        $('status').textContent = final.status;
        $('bar').value = final.progress?.percent ?? 0;
        const { result } = await client.result(job.id);
        $('result').textContent = JSON.stringify(result);

        // The stream again, resumed after the first progress event: Last-Event-ID crosses origins too.
        const resumed = [];
        for await (const event of client.events(job.id, { lastEventId: firstProgressId })) resumed.push(event.type);
        $('resumed').textContent = (firstProgressId ? 'after ' + firstProgressId + ': ' : '') + resumed.join(' ');

        // A page can read the headers the API exposes.
        const res = await fetch(api + '/v1/jobs', {
          method: 'POST',
          headers: { authorization: 'Bearer ' + key, 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'simulate', input: { durationMs: 0, steps: 1 } }),
        });
        $('location').textContent = res.status + ' ' + res.headers.get('location') + ' ' + Boolean(res.headers.get('x-request-id'));
      }

      async function read() {
        await client.get('job_does_not_matter');
      }

      (params.get('mode') === 'read' ? read() : run()).then(
        () => document.body.setAttribute('data-done', 'ok'),
        (err) => {
          $('error').textContent = err.name + ': ' + err.message;
          document.body.setAttribute('data-done', 'error');
        },
      );
    </script>
  </body>
</html>`;

/** A static web server for the page and the SDK, on its own origin (127.0.0.1, a free port). */
async function startSite(): Promise<{ origin: string; close(): Promise<void> }> {
  const sdk = await readFile(join(CLIENT_DIST, 'index.js'));
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (path === '/sdk.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(sdk);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('the bundled SDK in headless Chromium, on another origin than the API', () => {
  let listed: Awaited<ReturnType<typeof startSite>>;
  let unlisted: Awaited<ReturnType<typeof startSite>>;
  let system: Awaited<ReturnType<typeof startSystem>>;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;

  beforeAll(async () => {
    [listed, unlisted, browser] = await Promise.all([startSite(), startSite(), launchBrowser()]);
    system = await startSystem({ CORS_ORIGINS: listed.origin });
  });
  afterAll(async () => {
    await browser?.close();
    await system?.stop();
    await Promise.all([listed?.close(), unlisted?.close()]);
  });

  const open = async (site: { origin: string }, mode: 'run' | 'read') => {
    const opened = await loopbackPage(browser.browser);
    const console: string[] = [];
    opened.page.on('console', (m: ConsoleMessage) => console.push(m.text()));
    const query = new URLSearchParams({ api: system.api.url, key: KEY_A, mode });
    await opened.page.goto(`${site.origin}/?${query}`);
    await opened.page.locator('body[data-done]').waitFor({ timeout: 25_000 });
    return { ...opened, console };
  };

  it('when a page on a listed origin submits a job, then it shows progress from the event stream and then the result', async () => {
    const { page, context, offsite } = await open(listed, 'run');
    try {
      const text = (id: string) => page.locator(`#${id}`).textContent();
      expect(await text('error')).toBe('');
      expect(await page.getAttribute('body', 'data-done')).toBe('ok');
      expect(await text('job')).toMatch(/^job_/);
      expect(await text('status')).toBe('completed');
      // Progress came live from the stream (not only from polled snapshots), then the final event.
      const events = (await text('events'))?.split(' ') ?? [];
      expect(events[0]).toBe('snapshot');
      expect(events).toContain('progress');
      expect(events.at(-1)).toBe('completed');
      expect(await page.locator('#bar').getAttribute('value')).toBe('100');
      expect(JSON.parse((await text('result')) ?? 'null')).toMatchObject({ steps: 5, attempt: 1 });
      // Resuming with Last-Event-ID passed the preflight and ran to the final event.
      expect(await text('resumed')).toMatch(/^after \S+: .*completed$/);
      // Location and X-Request-Id are readable from another origin.
      expect(await text('location')).toMatch(/^202 \/v1\/jobs\/job_\S+ true$/);
      expect(offsite).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('when a page on an origin not in CORS_ORIGINS calls the API, then the browser refuses it with a CORS error', async () => {
    const { page, context, console } = await open(unlisted, 'read');
    try {
      expect(await page.getAttribute('body', 'data-done')).toBe('error');
      expect(await page.locator('#error').textContent()).toMatch(/^ConnectionError: .*Failed to fetch/);
      expect(console.join('\n')).toMatch(/blocked by CORS policy/);
    } finally {
      await context.close();
    }
  });
});
