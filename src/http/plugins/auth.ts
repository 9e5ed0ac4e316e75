/**
 * Enforces bearer tokens on /v1 when a token table is configured. /healthz, /readyz, /metrics,
 * /docs and /openapi.json stay open. Missing or unknown token: 401; out of scope: 403, before
 * anything is parsed or changed.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { allows, type Principal, type Scope, type TokenTable } from '../auth.js';
import { sendProblem } from '../error-handler.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** Who the audit trail says made a change: the token's id, or "anonymous" without tokens. */
export function actorOf(request: FastifyRequest): string {
  return request.principal?.id ?? 'anonymous';
}

/** What a route needs: GET reads; quirk changes are admin; every other change or decision is vmm. */
function required(request: FastifyRequest): Scope {
  if (request.method === 'GET') return 'read';
  if (request.routeOptions.url === '/v1/quirks') return 'admin';
  return 'vmm';
}

function auth(app: FastifyInstance, opts: { tokens: TokenTable | undefined }): void {
  app.decorateRequest('principal', null);
  const tokens = opts.tokens;
  if (tokens === undefined) return;
  // Callback style: no promise per request. A refused request is answered here and goes no further.
  app.addHook('onRequest', (request, reply, done) => {
    const url = request.routeOptions.url;
    if (url === undefined || !url.startsWith('/v1')) {
      done();
      return;
    }
    const header = request.headers.authorization;
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    const principal = token === '' ? undefined : tokens.authenticate(token);
    if (principal === undefined) {
      reply.header('www-authenticate', 'Bearer realm="coherency"');
      sendProblem(request, reply, 'UNAUTHENTICATED', token === '' ? 'a bearer token is required' : 'the bearer token is not known');
      return;
    }
    request.principal = principal;
    const params = request.params as { vmId?: string; jobId?: string };
    const vmId = params.vmId ?? (params.jobId === undefined ? undefined : app.policy.flushJob(params.jobId)?.vmId);
    const scope = required(request);
    if (!allows(principal, scope, vmId)) {
      sendProblem(request, reply, 'FORBIDDEN', `token ${principal.id} may not ${scope === 'read' ? 'read' : 'do'} this${vmId === undefined ? '' : ` for VM ${vmId}`}`);
      return;
    }
    done();
  });
}

export default fp(auth, { name: 'auth', fastify: '5.x', dependencies: ['services'] });
