/**
 * What `npm run docker:smoke` leaves behind (nothing, unless asked to keep it) and how it says
 * that a step failed. Everything it makes in an engine carries the label RUN_LABEL=<run id>:
 * the images it builds (podman puts the build's --label on every intermediate image too, so the
 * build cache goes with them), the stand-in base image it makes, its containers and volumes. It
 * removes by that label and nothing else, so the machine's other images are never touched.
 */

export const RUN_LABEL = 'io.coherency.smoke.run';

/** One entry of `podman images --all --format json`. */
export interface ImageListing {
  readonly Id: string;
  readonly Names?: readonly string[] | null;
  readonly Labels?: Readonly<Record<string, string>> | null;
  readonly Created?: number;
}

/**
 * The images a run made (or, with `run` undefined, every run: `--clean`), newest first, so a
 * child goes before the image it was built on.
 */
export function ourImages(images: readonly ImageListing[], run: string | undefined): string[] {
  return images
    .filter((i) => {
      const label = i.Labels?.[RUN_LABEL];
      return label !== undefined && (run === undefined || label === run);
    })
    .sort((a, b) => (b.Created ?? 0) - (a.Created ?? 0))
    .map((i) => i.Id);
}

/** One entry of `podman ps --all --external --format json` (buildah's working containers included). */
export interface ContainerListing {
  readonly Id: string;
  readonly Image?: string;
  readonly ImageID?: string;
  readonly Command?: readonly string[] | null;
  readonly Created?: number;
}

/** One entry of `runc list --format json`. */
export interface RuncListing {
  readonly id: string;
  readonly status: string;
  readonly bundle: string;
  readonly created: string;
}

/**
 * What a build stopped midway (Ctrl-C, a failing RUN) leaves outside the image list: buildah's
 * working containers (in podman's storage, from the base or one of the run's images, made since
 * the run began) and the stopped runc state of its RUN step with its bundle in /var/tmp. A running
 * one, or one from another image, is someone else's build and is left alone.
 */
export function buildLeftovers(
  containers: readonly ContainerListing[],
  runc: readonly RuncListing[],
  run: { readonly since: number; readonly base: string; readonly images: readonly string[] }
): { containers: string[]; runc: { id: string; bundle: string | undefined }[] } {
  const ours = (image: string | undefined): boolean => image !== undefined && (image === run.base || run.images.some((id) => id === image || id.startsWith(image) || image.startsWith(id)));
  return {
    containers: containers
      .filter((c) => (c.Command ?? []).includes('buildah') && (c.Created ?? 0) >= Math.floor(run.since / 1000) && (ours(c.Image) || ours(c.ImageID)))
      .map((c) => c.Id),
    runc: runc
      .filter((r) => r.id.startsWith('buildah-') && r.status === 'stopped' && Date.parse(r.created) >= Math.floor(run.since / 1000) * 1000)
      .map((r) => ({ id: r.id, bundle: /^\/var\/tmp\/buildah\d+$/.test(r.bundle) ? r.bundle : undefined }))
  };
}

/** What a run undoes, newest first, each once, whether the run passed, failed or was interrupted. */
export class Cleanup {
  readonly #actions: { readonly what: string; readonly undo: () => void; readonly keepable: boolean }[] = [];

  /** `keepable`: an image a passing run keeps when asked to (`--keep`); containers, volumes and temp files always go. */
  add(what: string, undo: () => void, keepable = false): void {
    this.#actions.push({ what, undo, keepable });
  }

  /** Undoes everything added so far (but what `keep` spares); a failing action does not stop the others. */
  run(keep = false): { undone: string[]; kept: string[]; failed: { what: string; error: string }[] } {
    const undone: string[] = [];
    const kept: string[] = [];
    const failed: { what: string; error: string }[] = [];
    for (let action = this.#actions.pop(); action !== undefined; action = this.#actions.pop()) {
      if (keep && action.keepable) {
        kept.push(action.what);
        continue;
      }
      try {
        action.undo();
        undone.push(action.what);
      } catch (err) {
        failed.push({ what: action.what, error: firstLine(err instanceof Error ? err.message : String(err)) });
      }
    }
    return { undone, kept, failed };
  }
}

/** A command that exited non-zero, was killed, or could not start. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly outcome: string,
    readonly stderr: string
  ) {
    super(`${command}: ${outcome}`);
  }
}

/** The run was stopped by a signal (Ctrl-C). */
export class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

function firstLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? text;
}

/** The last meaningful line of a command's stderr (podman's "Error: ..." is last). */
export function lastLine(stderr: string): string | undefined {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .pop();
}

/** What to do about a failure whose output says `stderr`, where the cause is a known one. */
export function hint(stderr: string): string | undefined {
  if (/error setting rlimit/.test(stderr)) {
    return 'the engine asked for more open files or processes than this machine allows: set in /etc/containers/containers.conf\n    [containers]\n    default_ulimits = []\n  (docker:smoke passes --ulimit itself where it sees this coming: see its "ulimits" line above)';
  }
  if (/Cannot connect to the Docker daemon/.test(stderr)) return 'start the Docker engine (dockerd), or uninstall the docker CLI so podman is used';
  if (/no space left on device/i.test(stderr)) return 'the disk is full: `npm run docker:smoke -- --clean` removes what earlier runs left behind; `podman system df` shows the rest';
  if (/Temporary failure in name resolution|Could not resolve|ENOTFOUND|EAI_AGAIN|Failed getting release file/.test(stderr)) {
    return 'the stand-in base image needs the network (deb.debian.org for debootstrap, the npm registry for Node.js)';
  }
  return undefined;
}

/** The short message a failed step prints: the step, what failed, a hint where the cause is known. No stack trace. */
export function failureMessage(step: string, err: unknown): string {
  const lines = [`docker smoke: FAILED at "${step}"`];
  if (err instanceof Interrupted) {
    lines[0] = `docker smoke: ${err.message} during "${step}"`;
  } else if (err instanceof CommandError) {
    const last = lastLine(err.stderr);
    lines.push(`  ${err.command}: ${err.outcome}${last === undefined ? '' : `: ${last}`}`);
    const h = hint(err.stderr);
    if (h !== undefined) lines.push(`  what to do: ${h}`);
  } else {
    lines.push(`  ${firstLine(err instanceof Error ? err.message : String(err))}`);
  }
  return lines.join('\n');
}
