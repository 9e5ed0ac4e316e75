import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';

describe('health', () => {
  it('GET /healthz answers ok', async () => {
    const app = await buildApp();
    try {
      const res = await app.inject({ method: 'GET', url: '/healthz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ok' });
    } finally {
      await app.close();
    }
  });
});
