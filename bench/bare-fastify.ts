/**
 * The baseline server of bench/decisions.ts, run by it as a child process: a bare Fastify 5 app
 * with the service's logger settings and one POST route, without a schema, answering the JSON
 * the real decision route gave (BARE_ANSWER). Listens on HOST:PORT until SIGTERM.
 */
import Fastify from 'fastify';

const answer = JSON.parse(process.env['BARE_ANSWER'] ?? '{}') as Record<string, unknown>;
const level = process.env['LOG_LEVEL'] ?? 'info';

// The same logger options buildApp gives the service (src/http/app.ts).
const app = Fastify({ logger: { level, redact: ['req.headers.authorization', 'headers.authorization'] } });
app.post('/v1/vms/:vmId/decisions/flush', (_request, reply) => reply.send(answer));
await app.listen({ host: process.env['HOST'] ?? '127.0.0.1', port: Number(process.env['PORT'] ?? 0) });
process.once('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
