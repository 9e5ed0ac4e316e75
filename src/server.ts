/**
 * The only file that listens or exits.
 */
import { readFileSync } from 'node:fs';
import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig, type Config } from './config.js';
import { defaultQuirksFile, parseQuirkFile, type Quirk } from './domain/index.js';
import { TokenTable } from './http/auth.js';
import { buildApp } from './http/app.js';
import { listenUnix, type UnixListener } from './http/unix-socket.js';
import { createRuntime } from './service/runtime.js';
import { MemoryStore } from './store/memory-store.js';
import { PostgresStore } from './store/postgres-store.js';
import { SqliteStore } from './store/sqlite-store.js';
import type { StateStore } from './store/state-store.js';

function quirksFrom(config: Config): Quirk[] {
  if (config.quirksFile === undefined) return parseQuirkFile(defaultQuirksFile);
  return parseQuirkFile(JSON.parse(readFileSync(config.quirksFile, 'utf8')));
}

let config: Config;
let quirks: Quirk[];
let tokens: TokenTable | undefined;
try {
  config = loadConfig();
  quirks = quirksFrom(config);
  tokens = config.authTokensFile === undefined ? undefined : new TokenTable(JSON.parse(readFileSync(config.authTokensFile, 'utf8')));
} catch (err) {
  // Fail fast, before listening, with a message that names what is wrong.
  process.stderr.write(`${err instanceof ConfigError ? err.message : `cannot start: ${String(err)}`}\n`);
  process.exit(1);
}

let store: StateStore;
try {
  store =
    config.store === 'memory'
      ? new MemoryStore()
      : config.store === 'postgres'
        ? new PostgresStore({ connectionString: config.storeUrl ?? '', schema: config.storeSchema })
        : new SqliteStore(config.dataDir);
} catch (err) {
  process.stderr.write(`cannot open the ${config.store} store under ${config.dataDir}: ${String(err)}\n`);
  process.exit(1);
}
const runtime = createRuntime({
  defaults: config.defaultPolicy,
  quirks,
  store,
  windowMs: config.flushWindowMs,
  maxPending: config.maxPendingJobs,
  jobHistory: config.flushJobHistory,
  jobMaxAgeMs: config.flushJobMaxAgeSeconds * 1000,
  auditRetentionMs: config.auditRetentionDays * 86_400_000,
  auditMaxBytes: config.auditMaxMb * 1024 * 1024,
  flushAcks: config.flushAcks,
  maxUnackedJobs: config.maxUnackedJobs,
  ...(config.poolThreads === undefined ? {} : { threads: config.poolThreads }),
  ...(config.simThreads === undefined ? {} : { simThreads: config.simThreads })
});
const app = await buildApp({
  runtime,
  logger: { level: config.logLevel },
  logSummaryIntervalMs: config.logSummaryIntervalSeconds * 1000,
  batchLimit: config.batchLimit,
  flushAckTimeoutMs: config.flushAckTimeoutSeconds * 1000,
  bodyLimit: config.bodyLimit,
  rateLimit: config.rateLimit,
  maxEventLoopDelayMs: config.maxEventLoopDelayMs,
  ...(tokens === undefined ? {} : { tokens })
});
let unix: UnixListener | undefined;
try {
  await app.listen({ host: config.host, port: config.port });
  if (config.socketPath !== undefined) {
    unix = await listenUnix(app, config.socketPath, config.socketMode);
    app.log.info({ socketPath: unix.path, mode: `0${config.socketMode.toString(8)}` }, 'listening on a Unix socket too');
  }
} catch (err) {
  app.log.error(err, 'could not listen');
  process.exit(1);
}
// Listening already, but not ready (readyz 503, changes refused, decisions failing closed) until
// every acknowledged change is replayed.
// A store that cannot be read yet (PostgreSQL still starting, say) is retried every 2 s.
// The first failure is logged, then one retry in 15 (every 30 s), so that a store down for hours
// does not fill the log.
const started = performance.now();
for (let attempt = 0; ; attempt++) {
  try {
    const replayed = await runtime.start();
    app.log.info({ store: config.store, dataDir: config.dataDir, effects: replayed, attempts: attempt + 1, ms: Math.round(performance.now() - started) }, 'state restored');
    break;
  } catch (err) {
    if (attempt % 15 === 0) app.log.error({ err, attempts: attempt + 1 }, `cannot load the state from the ${config.store} store; retrying every 2 s`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
if (!runtime.service.configuredQuirks().inForce) {
  app.log.warn(
    { quirksFile: config.quirksFile ?? 'shipped', inForce: runtime.service.quirks().length, configured: quirks.length },
    'the configured quirk list differs from the one in force, which the store keeps: it is not applied; PUT /v1/quirks applies it (GET /v1/quirks shows both)'
  );
}
// With a shared store, pick up other replicas' changes continuously.
runtime.service.follow();
// The audit trail keeps AUDIT_RETENTION days (older changes are forgotten now and every hour) and
// at most AUDIT_MAX_MB (checked every few seconds).
runtime.service.auditBudget.start();
app.log.info({ quirks: quirks.length, defaults: config.defaultPolicy, batchLimit: config.batchLimit, auth: tokens === undefined ? 'none' : `${tokens.size} token(s)` }, 'ready');
if (tokens === undefined) app.log.warn({ host: config.host }, 'no AUTH_TOKENS_FILE: /v1 is open to anyone who can reach this address');

// Graceful shutdown: stop accepting (late requests on open connections get 503), finish every
// accepted flush job, close the store. A second signal, or 30 s, exits at once.
closeWithGrace({ delay: 30_000, logger: { error: (m: string) => app.log.error(m) } }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an error');
  else app.log.info({ signal }, 'shutting down: draining flush jobs');
  // The socket stops taking connections with the TCP listener; its open ones end with the app.
  const socketClosed = unix?.close();
  await app.close();
  unix?.force();
  await socketClosed;
  app.log.info('shut down');
});
