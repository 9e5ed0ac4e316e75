/**
 * A real browser renders Swagger UI at /docs: Debian's chromium (/usr/bin/chromium) driven by
 * playwright-core. Nothing is downloaded, and every request other than to the app is aborted.
 * If the browser cannot start, the test fails. The server listens on a port the system picks (not
 * the default 8080), and "Try it out" reaches it: the document's server is relative.
 */
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { launchChromium, STEP_TIMEOUT_MS } from '../helpers/browser.js';

const TEST_TIMEOUT_MS = 60_000;

describe('Swagger UI at /docs in a real browser', () => {
  let app: FastifyInstance | undefined;
  let browser: Browser | undefined;

  afterEach(async () => {
    await browser?.close();
    await app?.close();
    browser = undefined;
    app = undefined;
  }, STEP_TIMEOUT_MS);

  /** Swagger UI at /docs of a server listening on a port of the system's choosing, rendered. */
  async function openDocs(): Promise<{ page: Page; origin: string; foreign: string[]; pageErrors: string[] }> {
    const served = await buildApp();
    app = served;
    const origin = await served.listen({ host: '127.0.0.1', port: 0 });
    expect(origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(origin).not.toBe('http://127.0.0.1:8080');

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
    return { page, origin, foreign, pageErrors };
  }

  it('renders the document and expands POST /v1/vms/{vmId}/pins', async () => {
    const { page, foreign, pageErrors } = await openDocs();

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

  it('"Try it out" on GET /v1/policy executes against the server it is served by and shows its 200 answer; the event stream shows as text/event-stream with the schema of each kind', async () => {
    const { page, origin, foreign, pageErrors } = await openDocs();
    const operation = page.locator('.opblock.opblock-get', { has: page.locator('.opblock-summary-path[data-path="/v1/policy"]') });
    await operation.waitFor({ state: 'visible' });
    await operation.locator('.opblock-summary').click();
    await operation.locator('button.try-out__btn').click();
    await operation.locator('button.execute').click();

    // The live response: the request URL is this server's, and the answer is its 200.
    const live = operation.locator('.live-responses-table');
    await live.waitFor({ state: 'visible' });
    expect((await operation.locator('.request-url pre').textContent())?.trim()).toBe(`${origin}/v1/policy`);
    const row = live.locator('tbody .response').first();
    expect((await row.locator('.response-col_status').textContent())?.trim()).toBe('200');
    const shown = (await row.locator('.response-col_description pre').first().textContent()) ?? '';
    expect(shown).not.toContain('Failed to fetch');
    const answer = (await (app as FastifyInstance).inject({ method: 'GET', url: '/v1/policy' })).json<unknown>();
    expect(JSON.parse(shown)).toEqual(answer);

    // The event stream is shown as text/event-stream, with the schema of each kind's data.
    const stream = page.locator('.opblock.opblock-get', { has: page.locator('.opblock-summary-path[data-path="/v1/vms/{vmId}/events"]') });
    await stream.locator('.opblock-summary').click();
    const ok = stream.locator('.responses-table tr.response[data-code="200"]');
    await ok.waitFor({ state: 'visible' });
    expect(await ok.locator('.response-control-media-type select').inputValue()).toBe('text/event-stream');
    await ok.getByRole('tab', { name: 'Schema' }).click();
    const anyOf = ok.locator('.json-schema-2020-12-keyword--anyOf');
    await anyOf.locator('button').first().click();
    const titles = anyOf.locator('.json-schema-2020-12__title');
    await titles.nth(5).waitFor({ state: 'visible' });
    expect((await titles.allTextContents()).map((t) => t.trim().toLowerCase())).toEqual(
      ['decision', 'policy', 'deleted', 'flush-job', 'reset', 'dropped'].map((kind, i) => `#${i} event: ${kind}`)
    );

    expect(pageErrors).toEqual([]);
    expect(foreign).toEqual([]);
  }, TEST_TIMEOUT_MS);
});
