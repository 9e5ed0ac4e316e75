/**
 * The only file that listens or exits.
 */
import { buildApp } from './http/app.js';

const host = process.env['HOST'] ?? '127.0.0.1';
const port = Number(process.env['PORT'] ?? 8080);

const app = await buildApp({ logger: { level: process.env['LOG_LEVEL'] ?? 'info' } });
try {
  await app.listen({ host, port });
} catch (err) {
  app.log.error(err, 'could not listen');
  process.exit(1);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      () => process.exit(1)
    );
  });
}
