/**
 * Configuration from the environment, parsed once at start with zod. A bad value stops the
 * process with a message naming the variable.
 */
import { z } from 'zod';
import { ON_ENABLE, POLICY_MODES, type PolicyDefaults } from './domain/index.js';

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const EnvSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  SOCKET_PATH: z.string().min(1).optional(),
  SOCKET_MODE: z.string().regex(/^0?[0-7]{3}$/, 'an octal file mode such as 0660').default('0660'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_SUMMARY_INTERVAL: z.coerce.number().min(1).max(3_600).default(60),
  DATA_DIR: z.string().min(1).default('./data'),
  STORE: z.enum(['sqlite', 'postgres', 'memory']).default('sqlite'),
  STORE_URL: z.string().min(1).optional(),
  STORE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/).default('coherency'),
  DEFAULT_MODE: z.enum(POLICY_MODES).default('trap'),
  DEFAULT_ON_ENABLE: z.enum(ON_ENABLE).default('allow-needs-nosnoop'),
  DEFAULT_EXEMPT_NEEDS_NOSNOOP: bool.default(true),
  BATCH_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  BODY_LIMIT: z.coerce.number().int().min(1024).default(8 * 1024 * 1024),
  QUIRKS_FILE: z.string().min(1).optional(),
  FLUSH_WINDOW_MS: z.coerce.number().min(0).max(60_000).default(2),
  MAX_PENDING_JOBS: z.coerce.number().int().min(1).default(10_000),
  FLUSH_JOB_HISTORY: z.coerce.number().int().min(1).default(1_000),
  FLUSH_JOB_MAX_AGE: z.coerce.number().int().min(1).default(3_600),
  AUDIT_RETENTION: z.coerce.number().int().min(1).default(30),
  // At least 1: the audit trail is always bounded by size (an unbounded one is what filled disks).
  AUDIT_MAX_MB: z.coerce.number().int().min(1).default(256),
  FLUSH_ACKS: z.enum(['required', 'answered']).default('required'),
  MAX_UNACKED_JOBS: z.coerce.number().int().min(1).default(10_000),
  FLUSH_ACK_TIMEOUT: z.coerce.number().min(0).max(3_600).default(10),
  POOL_THREADS: z.coerce.number().int().min(1).max(256).optional(),
  SIM_THREADS: z.coerce.number().int().min(0).max(256).optional(),
  AUTH_TOKENS_FILE: z.string().min(1).optional(),
  RATE_LIMIT: z.coerce.number().int().min(0).default(600_000),
  MAX_EVENT_LOOP_DELAY_MS: z.coerce.number().int().min(0).default(1000),
  AUTH: z.enum(['tokens', 'none']).optional()
});

export interface Config {
  readonly host: string;
  readonly port: number;
  /** Also serve on this Unix domain socket (absent: TCP only). */
  readonly socketPath: string | undefined;
  /** The socket file's mode (from SOCKET_MODE, octal). */
  readonly socketMode: number;
  readonly logLevel: z.output<typeof EnvSchema>['LOG_LEVEL'];
  /** Seconds between the per-VM activity lines that stand for the hot routes' access lines at info. */
  readonly logSummaryIntervalSeconds: number;
  readonly dataDir: string;
  /** `sqlite` (durable, under dataDir), `postgres` (shared by replicas) or `memory` (lost on restart). */
  readonly store: 'sqlite' | 'postgres' | 'memory';
  /** PostgreSQL connection string (STORE=postgres). */
  readonly storeUrl: string | undefined;
  /** PostgreSQL schema holding the tables. */
  readonly storeSchema: string;
  readonly defaultPolicy: PolicyDefaults;
  readonly batchLimit: number;
  readonly bodyLimit: number;
  /** A quirk file replacing the shipped one; absent: the shipped default. */
  readonly quirksFile: string | undefined;
  /** Flushes of one VM within this window join one job. */
  readonly flushWindowMs: number;
  /** Flush jobs queued or running beyond which decisions are refused with 503. */
  readonly maxPendingJobs: number;
  /** Finished flush jobs kept (in memory and in the store), at most this many... */
  readonly flushJobHistory: number;
  /** ...and for at most this many seconds after they finished. */
  readonly flushJobMaxAgeSeconds: number;
  /** Days the audit trail keeps a change. */
  readonly auditRetentionDays: number;
  /** MiB the audit trail may hold; beyond it its oldest records are removed, whatever their age. */
  readonly auditMaxMb: number;
  /** `required`: a flush job is pending until its VMM acknowledges it; `answered`: done once answered (weaker). */
  readonly flushAcks: 'required' | 'answered';
  /** Flush jobs of one VM waiting for acknowledgement beyond which changes to it are refused. */
  readonly maxUnackedJobs: number;
  /** How long ?wait=true waits for earlier flushes to be acknowledged (s). */
  readonly flushAckTimeoutSeconds: number;
  /** Worker threads planning flushes; absent: CPU count - 1 (at least 1). */
  readonly poolThreads: number | undefined;
  /** Worker threads for what-if simulations, started on demand; absent: CPU count; 0: inline. */
  readonly simThreads: number | undefined;
  /** JSON token file; absent: /v1 is open, so only loopback is served unless AUTH=none. */
  readonly authTokensFile: string | undefined;
  /** Requests per minute to /v1 per token; 0: unlimited. */
  readonly rateLimit: number;
  /** Event-loop delay in ms above which requests answer 503; 0: never. */
  readonly maxEventLoopDelayMs: number;
}

/** Loopback addresses: the only ones served without tokens unless AUTH=none says otherwise. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.AUTH_TOKENS_FILE === undefined && e.AUTH !== 'none' && !isLoopback(e.HOST)) {
    throw new ConfigError(
      `invalid configuration:\n  HOST: ${e.HOST} is not a loopback address and no AUTH_TOKENS_FILE is set; refusing to serve /v1 without tokens (set AUTH=none to do so on purpose)`
    );
  }
  if (e.AUTH === 'tokens' && e.AUTH_TOKENS_FILE === undefined) {
    throw new ConfigError('invalid configuration:\n  AUTH_TOKENS_FILE: required with AUTH=tokens');
  }
  if (e.STORE === 'postgres' && e.STORE_URL === undefined) {
    throw new ConfigError('invalid configuration:\n  STORE_URL: required with STORE=postgres (postgres://user@host:5432/db)');
  }
  return Object.freeze({
    host: e.HOST,
    port: e.PORT,
    socketPath: e.SOCKET_PATH,
    socketMode: Number.parseInt(e.SOCKET_MODE, 8),
    logLevel: e.LOG_LEVEL,
    logSummaryIntervalSeconds: e.LOG_SUMMARY_INTERVAL,
    dataDir: e.DATA_DIR,
    store: e.STORE,
    storeUrl: e.STORE_URL,
    storeSchema: e.STORE_SCHEMA,
    defaultPolicy: Object.freeze({ mode: e.DEFAULT_MODE, onEnable: e.DEFAULT_ON_ENABLE, exemptNeedsNoSnoop: e.DEFAULT_EXEMPT_NEEDS_NOSNOOP }),
    batchLimit: e.BATCH_LIMIT,
    bodyLimit: e.BODY_LIMIT,
    quirksFile: e.QUIRKS_FILE,
    flushWindowMs: e.FLUSH_WINDOW_MS,
    maxPendingJobs: e.MAX_PENDING_JOBS,
    flushJobHistory: e.FLUSH_JOB_HISTORY,
    flushJobMaxAgeSeconds: e.FLUSH_JOB_MAX_AGE,
    auditRetentionDays: e.AUDIT_RETENTION,
    auditMaxMb: e.AUDIT_MAX_MB,
    flushAcks: e.FLUSH_ACKS,
    maxUnackedJobs: e.MAX_UNACKED_JOBS,
    flushAckTimeoutSeconds: e.FLUSH_ACK_TIMEOUT,
    poolThreads: e.POOL_THREADS,
    simThreads: e.SIM_THREADS,
    authTokensFile: e.AUTH_TOKENS_FILE,
    rateLimit: e.RATE_LIMIT,
    maxEventLoopDelayMs: e.MAX_EVENT_LOOP_DELAY_MS
  });
}
