import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('configuration', () => {
  it('defaults: loopback, 8080, ./data, trap policy, 10,000-range batches', () => {
    expect(loadConfig({})).toEqual({
      host: '127.0.0.1',
      port: 8080,
      socketPath: undefined,
      socketMode: 0o660,
      logLevel: 'info',
      logSummaryIntervalSeconds: 60,
      dataDir: './data',
      store: 'sqlite',
      storeUrl: undefined,
      storeSchema: 'coherency',
      defaultPolicy: { mode: 'trap', onEnable: 'allow-needs-nosnoop', exemptNeedsNoSnoop: true },
      batchLimit: 10_000,
      bodyLimit: 8 * 1024 * 1024,
      quirksFile: undefined,
      flushWindowMs: 2,
      maxPendingJobs: 10_000,
      flushJobHistory: 1_000,
      flushJobMaxAgeSeconds: 3_600,
      auditRetentionDays: 30,
      auditMaxMb: 256,
      flushAcks: 'required',
      maxUnackedJobs: 10_000,
      flushAckTimeoutSeconds: 10,
      poolThreads: undefined,
      authTokensFile: undefined,
      rateLimit: 600_000,
      maxEventLoopDelayMs: 1000
    });
  });

  it('reads every variable', () => {
    const c = loadConfig({ HOST: '0.0.0.0', AUTH: 'none', PORT: '9000', LOG_LEVEL: 'debug', LOG_SUMMARY_INTERVAL: '10', DATA_DIR: '/data', DEFAULT_MODE: 'pessimistic', DEFAULT_ON_ENABLE: 'deny', DEFAULT_EXEMPT_NEEDS_NOSNOOP: 'false', BATCH_LIMIT: '500', BODY_LIMIT: '65536', QUIRKS_FILE: '/etc/quirks.json', FLUSH_WINDOW_MS: '5', MAX_PENDING_JOBS: '50', POOL_THREADS: '3', SIM_THREADS: '0', FLUSH_JOB_HISTORY: '7', FLUSH_JOB_MAX_AGE: '60', AUDIT_RETENTION: '2', FLUSH_ACKS: 'answered', FLUSH_ACK_TIMEOUT: '0.5', MAX_UNACKED_JOBS: '5' });
    expect(c).toMatchObject({ host: '0.0.0.0', port: 9000, logLevel: 'debug', logSummaryIntervalSeconds: 10, dataDir: '/data', batchLimit: 500, bodyLimit: 65536, quirksFile: '/etc/quirks.json', flushWindowMs: 5, maxPendingJobs: 50, poolThreads: 3, simThreads: 0, flushJobHistory: 7, flushJobMaxAgeSeconds: 60, auditRetentionDays: 2, flushAcks: 'answered', flushAckTimeoutSeconds: 0.5, maxUnackedJobs: 5 });
    expect(c.defaultPolicy).toEqual({ mode: 'pessimistic', onEnable: 'deny', exemptNeedsNoSnoop: false });
  });

  it('refuses a non-loopback address without tokens unless AUTH=none says so', () => {
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(/not a loopback address/);
    expect(loadConfig({ HOST: '0.0.0.0', AUTH: 'none' }).host).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '0.0.0.0', AUTH_TOKENS_FILE: '/etc/tokens.json' }).authTokensFile).toBe('/etc/tokens.json');
    expect(loadConfig({ HOST: '127.0.0.2' }).host).toBe('127.0.0.2');
    expect(() => loadConfig({ AUTH: 'tokens' })).toThrow(/AUTH_TOKENS_FILE/);
  });

  it('a Unix socket: its path, and its mode read as octal', () => {
    expect(loadConfig({ SOCKET_PATH: '/run/coherency/api.sock', SOCKET_MODE: '0600' })).toMatchObject({ socketPath: '/run/coherency/api.sock', socketMode: 0o600 });
    expect(loadConfig({ SOCKET_MODE: '660' }).socketMode).toBe(0o660);
    expect(() => loadConfig({ SOCKET_MODE: '0689' })).toThrow(/SOCKET_MODE: an octal file mode/);
  });

  it('AUDIT_MAX_MB: whole MiB, at least 1 (the audit trail is always bounded by size)', () => {
    expect(loadConfig({ AUDIT_MAX_MB: '2' }).auditMaxMb).toBe(2);
    expect(() => loadConfig({ AUDIT_MAX_MB: '0' })).toThrow(/AUDIT_MAX_MB/);
    expect(() => loadConfig({ AUDIT_MAX_MB: '1.5' })).toThrow(/AUDIT_MAX_MB/);
  });

  it('PostgreSQL needs a connection string', () => {
    expect(() => loadConfig({ STORE: 'postgres' })).toThrow(/STORE_URL/);
    expect(loadConfig({ STORE: 'postgres', STORE_URL: 'postgres://db/x', STORE_SCHEMA: 'fleet' })).toMatchObject({ store: 'postgres', storeUrl: 'postgres://db/x', storeSchema: 'fleet' });
  });

  it('names every bad variable', () => {
    expect(() => loadConfig({ PORT: 'eighty', DEFAULT_MODE: 'lazy' })).toThrow(ConfigError);
    try {
      loadConfig({ PORT: 'eighty', DEFAULT_MODE: 'lazy' });
    } catch (err) {
      expect((err as Error).message).toMatch(/PORT/);
      expect((err as Error).message).toMatch(/DEFAULT_MODE/);
    }
  });

  it('the server refuses to start on a bad variable, before listening, with a clear message', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { ...process.env, PORT: '70000' },
      encoding: 'utf8',
      timeout: 30_000
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/invalid configuration/);
    expect(run.stderr).toMatch(/PORT/);
  });
});
