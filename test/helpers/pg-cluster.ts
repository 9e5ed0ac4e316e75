/**
 * A throw-away PostgreSQL server of the test's own (initdb under a temp dir, its own port), so a
 * test can stop and start PostgreSQL without disturbing the machine's server that other tests
 * use. Runs the server binaries as the `postgres` user when the tests run as root.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const version = readdirSync(root).sort().pop();
  if (version === undefined) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  return join(root, version, 'bin');
}

export class PgCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'coherency-pg-'));
  readonly port: number;
  readonly #bin = binDir();
  readonly #asRoot = userInfo().uid === 0;

  constructor(port: number) {
    this.port = port;
    if (this.#asRoot) {
      const { uid, gid } = this.#postgresIds();
      chmodSync(this.dir, 0o700);
      chownSync(this.dir, uid, gid);
    }
    this.#run('initdb', ['-D', join(this.dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  start(): void {
    this.#run('pg_ctl', ['-D', join(this.dir, 'data'), '-w', '-t', '30', '-l', join(this.dir, 'log'), '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  }

  stop(): void {
    if (existsSync(join(this.dir, 'data', 'postmaster.pid'))) this.#run('pg_ctl', ['-D', join(this.dir, 'data'), '-w', '-t', '30', '-m', 'fast', 'stop']);
  }

  destroy(): void {
    try {
      this.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  #postgresIds(): { uid: number; gid: number } {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    return { uid, gid };
  }

  #run(tool: string, args: string[]): void {
    const path = join(this.#bin, tool);
    if (this.#asRoot) execFileSync('runuser', ['-u', 'postgres', '--', path, ...args], { stdio: 'pipe', cwd: this.dir });
    else execFileSync(path, args, { stdio: 'pipe', cwd: this.dir });
  }
}
