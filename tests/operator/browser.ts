import { type Browser, type BrowserContextOptions, chromium } from 'playwright-core';

/** Debian's chromium; `pnpm test` installs it when missing (scripts/ensure-chromium.sh); tests fail without it. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Headless Chromium with no network of its own (no background services, no component updates).
 * Playwright gives it a fresh, empty profile of its own (it refuses a `--user-data-dir` argument).
 */
export async function launchBrowser(): Promise<{ browser: Browser; close(): Promise<void> }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => undefined);
    },
  };
}

/** A page in a fresh context; requests to anything but the loopback address fail (no CDN may sneak in). */
export async function loopbackPage(browser: Browser, options: BrowserContextOptions = {}) {
  const context = await browser.newContext(options);
  const offsite: string[] = [];
  await context.route(/^(?!https?:\/\/(127\.0\.0\.1|localhost)[:/]).*/, (route) => {
    offsite.push(route.request().url());
    return route.abort();
  });
  const page = await context.newPage();
  return { page, context, offsite };
}
