/**
 * The simulation chart in a real browser: Debian's chromium renders GET
 * /v1/simulations/{id}/chart.svg from a listening server, a screenshot is taken, and the pixels
 * at the centre of each bar have that mode's colour: one visible bar per mode.
 */
import type { Browser } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { launchChromium, STEP_TIMEOUT_MS } from '../helpers/browser.js';

describe('simulation chart in a real browser', () => {
  let app: FastifyInstance | undefined;
  let browser: Browser | undefined;

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  }, STEP_TIMEOUT_MS);

  it('renders one bar per mode, each visible in its colour, taller for more bytes', async () => {
    app = await buildApp();
    const origin = await app.listen({ host: '127.0.0.1', port: 0 });
    const res = await fetch(`${origin}/v1/simulations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reference: 'viommu-network' }) });
    expect(res.status).toBe(201);
    const { links } = (await res.json()) as { links: { chart: string } };

    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 760, height: 460 } });
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    const answer = await page.goto(`${origin}${links.chart}`);
    expect(answer?.status()).toBe(200);
    expect(answer?.headers()['content-type']).toContain('image/svg+xml');

    const bars = [];
    for (const rect of await page.locator('rect.bar').all()) {
      const box = await rect.boundingBox();
      if (box === null) throw new Error('a bar is not rendered');
      bars.push({ mode: await rect.getAttribute('data-mode'), bytes: Number(await rect.getAttribute('data-bytes')), fill: await rect.getAttribute('fill'), ...box });
    }
    expect(bars.map((b) => b.mode)).toEqual(['pessimistic', 'trap', 'virtualize-zero']);
    for (const b of bars) expect(b.width).toBeGreaterThan(20);
    const [pessimistic, trap, vz] = bars;
    expect(pessimistic?.bytes).toBeGreaterThan(0);
    expect(vz?.bytes).toBe(0);
    expect(pessimistic?.height).toBeGreaterThan(10 * (vz?.height ?? 0));
    // Trap's default onEnable denies the accelerator's bit, so its attach clears it: no flush.
    expect(trap?.height).toBeCloseTo(vz?.height ?? 0, 0);

    // Read the pixels back from a screenshot of the rendered page.
    const png = await page.screenshot({ type: 'png' });
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    const pixels = await page.evaluate(
      async ({ data, points }) => {
        // Browser globals, typed here because the project compiles without the DOM library.
        interface Pixels {
          getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
          drawImage(img: unknown, x: number, y: number): void;
        }
        const g = globalThis as unknown as {
          Image: new () => { src: string; width: number; height: number; decode(): Promise<void> };
          OffscreenCanvas: new (w: number, h: number) => { getContext(kind: '2d'): Pixels | null };
        };
        const img = new g.Image();
        img.src = `data:image/png;base64,${data}`;
        await img.decode();
        // The page is an SVG document: an OffscreenCanvas needs no HTML element.
        const ctx = new g.OffscreenCanvas(img.width, img.height).getContext('2d');
        if (ctx === null) throw new Error('no 2d context');
        ctx.drawImage(img, 0, 0);
        return points.map(([x, y]) => {
          const [r, g2, b] = ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data;
          return `#${[r, g2, b].map((v) => (v ?? 0).toString(16).padStart(2, '0')).join('')}`;
        });
      },
      { data: png.toString('base64'), points: bars.map((b) => [b.x + b.width / 2, b.y + b.height - 1] as [number, number]) }
    );
    expect(pixels).toEqual(bars.map((b) => b.fill));
    // Labels a person reads: the mode names and the verdict.
    const text = await page.locator('svg').textContent();
    expect(text).toContain('0 violations');
    expect(text).toContain('virtualize-zero');
  });
});
