/**
 * The bound of bench/store.ts parts (a) and (b), run by it as a child process: a bare Fastify 5
 * app (the service's logger settings, no schemas) answering the same requests as the service
 * under the same VMM load (bench/vmm-load.ts), each change and each acknowledgement kept durably
 * before it is answered, the least a durable change can cost with an event loop that never
 * blocks: one row per request, inserted by a worker thread owning a better-sqlite3 connection
 * (WAL, synchronous=FULL), the requests of one turn sent in one message and committed in one
 * transaction (group commit). A pin or unpin is answered with a job id, and
 * `POST /v1/flush-jobs/:jobId/ack` keeps a row naming that job the same way. Its decision route
 * answers without storing anything. Listens on HOST:PORT with its file under DATA_DIR until
 * SIGTERM.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Fastify from 'fastify';

const WRITER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec('CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)');
const insert = db.prepare('INSERT INTO log (body) VALUES (?)');
const commit = db.transaction((bodies) => { for (const b of bodies) insert.run(b); });
let queue = [];
let ids = [];
let scheduled = false;
parentPort.on('message', ({ id, bodies }) => {
  queue.push(...bodies);
  ids.push(id);
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    commit(queue);
    parentPort.postMessage(ids);
    queue = [];
    ids = [];
  });
});
`;

const writer = new Worker(WRITER, {
  eval: true,
  workerData: { sqlite: join(process.cwd(), 'node_modules/better-sqlite3'), file: join(process.env['DATA_DIR'] ?? '.', 'bare.db') }
});
const waiting = new Map<number, (() => void)[]>();
writer.on('message', (ids: number[]) => {
  for (const id of ids) for (const done of waiting.get(id) ?? []) done();
  for (const id of ids) waiting.delete(id);
});

let nextId = 0;
let bodies: string[] = [];
let resolvers: (() => void)[] = [];
/** Resolves once `body` is committed; bodies of one turn travel in one message. */
function keep(body: string): Promise<void> {
  return new Promise((resolve) => {
    bodies.push(body);
    resolvers.push(resolve);
    if (bodies.length > 1) return;
    setImmediate(() => {
      const id = ++nextId;
      waiting.set(id, resolvers);
      writer.postMessage({ id, bodies });
      bodies = [];
      resolvers = [];
    });
  });
}

const level = process.env['LOG_LEVEL'] ?? 'info';
const app = Fastify({ logger: { level, redact: ['req.headers.authorization', 'headers.authorization'] } });
let nextJob = 0;
/** A change: its body kept, answered with the job its flush was promised to. */
const keepChange = async (request: { body: unknown }): Promise<unknown> => {
  const jobId = `fj-${++nextJob}`;
  await keep(JSON.stringify({ jobId, body: request.body }));
  return { decision: { rule: 'F1', action: 'flush' }, flush: { required: true, jobId }, revision: nextJob };
};
app.post('/v1/vms/:vmId/pins', keepChange);
app.post('/v1/vms/:vmId/unpins', keepChange);
/** An acknowledgement: a row naming its job, kept before the 200. */
app.post('/v1/flush-jobs/:jobId/ack', async (request: { params: unknown }) => {
  const { jobId } = request.params as { jobId: string };
  await keep(JSON.stringify({ ack: jobId }));
  return { id: jobId, state: 'acknowledged' };
});
app.get('/readyz', (_request, reply) => reply.send({ status: 'ready' }));
app.post('/v1/vms/:vmId/decisions/flush', (_request, reply) => reply.send({ decisions: [{ rule: 'F1', action: 'none' }] }));
await app.listen({ host: process.env['HOST'] ?? '127.0.0.1', port: Number(process.env['PORT'] ?? 0) });
process.once('SIGTERM', () => {
  void app.close().then(() => writer.terminate().then(() => process.exit(0)));
});
