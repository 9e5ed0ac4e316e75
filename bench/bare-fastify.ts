/**
 * The baseline server of bench/decisions.ts, run by it as a child process: a bare Fastify 5 app
 * with the service's logger settings and one POST route, without a schema. It answers the JSON
 * the real decision route gave (BARE_ANSWER), or, with BARE_ANSWERS_FILE (a JSON object from the
 * first range's iova of a body to the answer the real route gave it, as text), it parses the
 * body as Fastify does and sends those very bytes: the cost of moving the JSON at all. Listens on
 * HOST:PORT until SIGTERM.
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const answer = JSON.parse(process.env['BARE_ANSWER'] ?? '{}') as Record<string, unknown>;
const file = process.env['BARE_ANSWERS_FILE'];
const answers = new Map<string, string>(Object.entries(file === undefined ? {} : (JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>)));
const level = process.env['LOG_LEVEL'] ?? 'info';

// The same logger options buildApp gives the service (src/http/app.ts).
const app = Fastify({ logger: { level, redact: ['req.headers.authorization', 'headers.authorization'] } });
app.post('/v1/vms/:vmId/decisions/flush', (request, reply) => {
  if (answers.size === 0) return reply.send(answer);
  const first = (request.body as { ranges: { iova: string }[] }).ranges[0]?.iova ?? '';
  const bytes = answers.get(first);
  if (bytes === undefined) return reply.code(404).send({ missing: first });
  return reply.type('application/json; charset=utf-8').send(bytes);
});
await app.listen({ host: process.env['HOST'] ?? '127.0.0.1', port: Number(process.env['PORT'] ?? 0) });
process.once('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
