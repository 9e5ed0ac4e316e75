/**
 * Makes the policy service and the edge limits available to routes as `app.policy` and
 * `app.limits`.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { PolicyService } from '../../service/policy-service.js';

export interface Limits {
  /** Ranges per pin, unpin or flush-decision batch. */
  readonly batchLimit: number;
  /** How long ?wait=true waits for earlier flushes to be acknowledged (ms). */
  readonly flushAckTimeoutMs: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    policy: PolicyService;
    limits: Limits;
  }
}

function services(app: FastifyInstance, opts: { service: PolicyService; limits: Limits }): void {
  app.decorate('policy', opts.service);
  app.decorate('limits', opts.limits);
}

export default fp(services, { name: 'services', fastify: '5.x' });
