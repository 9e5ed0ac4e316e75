/**
 * The OpenAPI document, generated from the route schemas, served at /openapi.json, with
 * Swagger UI at /docs. The committed copy in openapi/openapi.json must equal what is served.
 */
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ruleRanges } from '../../domain/index.js';
import { OPTIONAL_BODY, polishDocument } from '../openapi-polish.js';

export const API_VERSION = '0.1.0';

/**
 * @fastify/swagger marks every route's body required; a body the route's own schema accepts
 * absent (the acknowledgement's report, a reset's options) is marked here, for openapi-polish.ts
 * to document as optional: what the server takes decides, not a list.
 */
const markOptionalBody: typeof jsonSchemaTransform = (input) => {
  const out = jsonSchemaTransform(input);
  const body = input.schema.body;
  if (body instanceof z.ZodType && body.safeParse(undefined).success) (out.schema as Record<string, unknown>)[OPTIONAL_BODY] = true;
  return out;
};

async function swagger(app: FastifyInstance): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Coherency policy service',
        description:
          `Decides when CPU caches must be flushed for DMA pages and whether a guest may set a PCIe device's Enable No Snoop bit. Every answer names the rules (${ruleRanges()}) that produced it.`,
        version: API_VERSION,
        license: { name: 'MIT', identifier: 'MIT' }
      },
      // Relative: the server the document was fetched from, whatever its host and port, so that
      // Swagger UI's "Try it out" and generated clients call the server that serves them.
      servers: [{ url: '/', description: 'The server this document is served by (HOST and PORT; by default http://127.0.0.1:8080)' }],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'A token from AUTH_TOKENS_FILE (scopes read, vmm, admin). Without a token file the server runs open on loopback.' }
        }
      },
      security: [{ bearerAuth: [] }],
      tags: [
        { name: 'vms', description: 'Virtual machines and their whole state' },
        { name: 'domains', description: 'IOMMU domains of a VM' },
        { name: 'devices', description: 'Assigned PCI devices, resets and trapped DEVCTL writes' },
        { name: 'pins', description: 'Pinned DMA ranges: pin (F1), unpin (F3)' },
        { name: 'decisions', description: 'Read-only must-flush questions' },
        { name: 'flush-jobs', description: 'Flush jobs and receipts' },
        { name: 'quirks', description: 'Device quirks' },
        { name: 'policy', description: 'Server policy defaults' },
        { name: 'audit', description: 'Who changed what, and which rules fired' },
        { name: 'simulations', description: 'What if? Traces replayed under every policy mode' },
        { name: 'health', description: 'Liveness and readiness' }
      ]
    },
    transform: markOptionalBody,
    transformObject: (input) => polishDocument(jsonSchemaTransformObject(input) as Record<string, unknown>) as ReturnType<typeof jsonSchemaTransformObject>
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
}

export default fp(swagger, { name: 'swagger', fastify: '5.x' });
