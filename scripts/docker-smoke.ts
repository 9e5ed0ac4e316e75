/**
 * npm run docker:smoke: builds and runs the image with a Docker engine when there is one;
 * without one, replays the Dockerfile's steps: copies what the COPY lines copy into temp dirs,
 * runs the RUN npm steps there, starts the CMD with the image's ENV, and runs the HEALTHCHECK
 * command until it passes. Then it checks that tokens are enforced and that SIGTERM exits 0.
 * Traffic goes to 127.0.0.1 only.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';

const repo = resolve(new URL('..', import.meta.url).pathname);
const TOKEN = 'smoke-admin-token-0123456789';

function hasDockerEngine(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}

function sh(command: string, cwd: string): void {
  console.log(`  $ ${command}`);
  execFileSync('bash', ['-c', command], { cwd, stdio: 'inherit', env: { ...process.env, NODE_ENV: '' } });
}

function text(lines: string[], i: Instruction): string {
  const r = i.getRange();
  return lines.slice(r.start.line, r.end.line + 1).join('\n');
}

async function check(port: number, env: Record<string, string>, healthcheck: string[] | undefined, stop: () => Promise<number | null>): Promise<void> {
  const base = `http://127.0.0.1:${port}`;
  let healthy = false;
  for (let i = 0; i < 60 && !healthy; i++) {
    await new Promise((r) => setTimeout(r, 500));
    if (healthcheck !== undefined) {
      try {
        execFileSync(healthcheck[0] as string, healthcheck.slice(1), { env: { ...process.env, ...env }, stdio: 'ignore', timeout: 5000 });
        healthy = true;
      } catch {
        healthy = false;
      }
    } else {
      healthy = (await fetch(`${base}/readyz`).catch(() => undefined))?.ok === true;
    }
  }
  if (!healthy) throw new Error('the HEALTHCHECK never passed');
  console.log('  HEALTHCHECK passed');
  const open = await fetch(`${base}/v1/vms`);
  if (open.status !== 401) throw new Error(`/v1 without a token answered ${open.status}, expected 401`);
  const authed = await fetch(`${base}/v1/vms`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (authed.status !== 200) throw new Error(`/v1 with a token answered ${authed.status}`);
  console.log('  tokens enforced: 401 without, 200 with');
  const code = await stop();
  if (code !== 0) throw new Error(`SIGTERM: exit code ${String(code)}, expected 0`);
  console.log('  SIGTERM: exited 0');
}

async function withEngine(): Promise<void> {
  const tag = `coherency-smoke:${process.pid}`;
  sh(`docker build -t ${tag} .`, repo);
  const dir = mkdtempSync(join(tmpdir(), 'coherency-smoke-'));
  writeFileSync(join(dir, 'tokens.json'), JSON.stringify([{ id: 'smoke', token: TOKEN, scopes: ['admin'] }]));
  const port = await freePort();
  const name = `coherency-smoke-${process.pid}`;
  sh(`docker run -d --init --name ${name} -p 127.0.0.1:${port}:8080 -v ${dir}:/secrets:ro -e AUTH_TOKENS_FILE=/secrets/tokens.json ${tag}`, repo);
  try {
    await check(port, {}, undefined, () => {
      sh(`docker stop -t 30 ${name}`, repo);
      return Promise.resolve(Number(execFileSync('docker', ['inspect', '-f', '{{.State.ExitCode}}', name]).toString().trim()));
    });
  } finally {
    execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function withoutEngine(): Promise<void> {
  const source = readFileSync(join(repo, 'Dockerfile'), 'utf8');
  const lines = source.split('\n');
  const dockerfile = DockerfileParser.parse(source);
  const stages = dockerfile.getFROMs().map((f) => f.getRange().start.line);
  const root = mkdtempSync(join(tmpdir(), 'coherency-smoke-'));
  const stageDirs: string[] = [];
  const env: Record<string, string> = {};
  let cmd: string[] | undefined;
  let healthcheck: string[] | undefined;
  try {
    for (const instruction of dockerfile.getInstructions()) {
      const line = instruction.getRange().start.line;
      const stage = stages.filter((s) => s <= line).length - 1;
      if (stage < 0) continue;
      const dir = (stageDirs[stage] ??= join(root, `stage${stage}`));
      const keyword = instruction.getKeyword();
      const raw = text(lines, instruction);
      if (keyword === 'FROM' || keyword === 'WORKDIR') {
        mkdirSync(dir, { recursive: true });
        console.log(`${raw.trim()}  ->  ${dir}`);
      } else if (keyword === 'COPY') {
        const parts = (instruction.getArgumentsContent() ?? '').split(/\s+/).filter((p) => p !== '');
        const from = /--from=(\w+)/.exec(raw)?.[1];
        const dest = parts.pop() as string;
        const fromDir = from === undefined ? repo : (stageDirs[0] as string);
        for (const p of parts) {
          const src = from === undefined ? join(fromDir, p) : join(fromDir, p.replace(/^\/app\/?/, ''));
          const target = dest.endsWith('/') || parts.length > 1 ? join(dir, dest, p.split('/').pop() as string) : join(dir, dest);
          cpSync(src, target, { recursive: true });
        }
        console.log(raw.trim());
      } else if (keyword === 'RUN') {
        const command = instruction.getArgumentsContent() ?? '';
        if (/apt-get|chown|mkdir -p \/data/.test(command)) {
          console.log(`${raw.split('\n')[0]?.trim() ?? ''} ...  (skipped: system packages and /data are the image's, this machine has its own)`);
          continue;
        }
        sh(command, dir);
      } else if (keyword === 'ENV') {
        for (const m of (instruction.getArgumentsContent() ?? '').matchAll(/(\w+)=(\S+)/g)) env[m[1] as string] = m[2] as string;
      } else if (keyword === 'CMD') {
        cmd = JSON.parse(instruction.getArgumentsContent() ?? '[]') as string[];
      } else if (keyword === 'HEALTHCHECK') {
        const json = /CMD (\[.*\])/s.exec(raw.replace(/\\\n/g, ' '))?.[1];
        healthcheck = json === undefined ? undefined : (JSON.parse(json) as string[]);
      }
    }
    if (cmd === undefined) throw new Error('no CMD');
    const runtimeDir = stageDirs[stageDirs.length - 1] as string;
    const port = await freePort();
    writeFileSync(join(root, 'tokens.json'), JSON.stringify([{ id: 'smoke', token: TOKEN, scopes: ['admin'] }]));
    // The image's ENV, with the data volume and the port mapped to this machine.
    const runEnv = { ...env, PORT: String(port), DATA_DIR: join(root, 'data'), AUTH_TOKENS_FILE: join(root, 'tokens.json') };
    console.log(`CMD ${JSON.stringify(cmd)} with ${JSON.stringify(runEnv)}`);
    const child = spawn(cmd[0] as string, cmd.slice(1), { cwd: runtimeDir, env: { ...process.env, ...runEnv }, stdio: ['ignore', 'ignore', 'inherit'] });
    try {
      await check(port, { PORT: String(port) }, healthcheck, async () => {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const [code] = (await exited) as [number | null];
        return code;
      });
    } finally {
      child.kill('SIGKILL');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (hasDockerEngine()) {
  console.log('docker smoke: a Docker engine is present: building and running the real image');
  await withEngine();
} else {
  console.log('docker smoke: no Docker engine: replaying the Dockerfile without one');
  await withoutEngine();
}
console.log('docker smoke: passed');
