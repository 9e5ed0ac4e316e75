/**
 * A real browser renders Swagger UI at /docs: Debian's chromium (/usr/bin/chromium) driven by
 * playwright-core. Nothing is downloaded, and every request other than to the app is aborted.
 * If the browser cannot start, the test fails.
 */
import type { Browser } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { launchChromium, STEP_TIMEOUT_MS } from '../helpers/browser.js';

const TEST_TIMEOUT_MS = 60_000;

describe('Swagger UI at /docs in a real browser', () => {
  let app: FastifyInstance | undefined;
  let browser: Browser | undefined;

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  }, STEP_TIMEOUT_MS);

  it('renders the document and expands POST /v1/vms/{vmId}/pins', async () => {
    app = await buildApp();
    const origin = await app.listen({ host: '127.0.0.1', port: 0 });
    expect(origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    browser = await launchChromium();
    const context = await browser.newContext();
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);

    // Only the app may be reached; anything else is aborted and reported.
    const foreign: string[] = [];
    await context.route('**/*', async (route) => {
      const url = route.request().url();
      if (url.startsWith(`${origin}/`)) {
        await route.continue();
      } else {
        foreign.push(url);
        await route.abort();
      }
    });
    const pageErrors: string[] = [];
    const page = await context.newPage();
    page.on('pageerror', (error) => {
      pageErrors.push(error.message);
    });

    const response = await page.goto(`${origin}/docs`);
    expect(response?.ok()).toBe(true);

    // Swagger UI has fetched and rendered the document.
    const title = page.locator('.swagger-ui .info .title');
    await title.waitFor({ state: 'visible' });
    expect(await title.textContent()).toContain('Coherency policy service');

    const operation = page.locator('.opblock.opblock-post', {
      has: page.locator('.opblock-summary-path[data-path="/v1/vms/{vmId}/pins"]')
    });
    await operation.waitFor({ state: 'visible' });
    expect(await operation.count()).toBe(1);
    expect(await operation.locator('.opblock-body').count()).toBe(0);

    await operation.locator('.opblock-summary').click();

    // The expanded operation shows its parameters and its request body with the example.
    const body = operation.locator('.opblock-body');
    await body.waitFor({ state: 'visible' });
    await operation.locator('tr[data-param-name="vmId"]').waitFor({ state: 'visible' });
    const requestBody = operation.locator('.opblock-section-request-body');
    await requestBody.waitFor({ state: 'visible' });
    await requestBody.getByText(/"iova"/).first().waitFor({ state: 'visible' });
    expect(await operation.getAttribute('class')).toMatch(/\bis-open\b/);

    expect(pageErrors).toEqual([]);
    expect(foreign).toEqual([]);
  }, TEST_TIMEOUT_MS);
});
