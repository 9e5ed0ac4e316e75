/**
 * Shell walkthroughs in the README and docs/ that a reader can paste into a terminal as they are:
 * a ```sh block of commands, each followed by what it prints as `# ` comment lines (bash ignores
 * them), so the block runs unchanged and the test can tell commands from outputs. The commands
 * are run with the machine's real bash, curl and jq against a listening server; only values
 * that change from run to run are written as placeholders.
 *
 * A block is groups separated by blank lines. In a group, `#` lines before its first command
 * are notes (prose for the reader); `# ` lines after a command are that command's output.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** One command line and the lines it prints (as the reader sees them: placeholders in). */
export interface ShellCommand {
  readonly line: string;
  readonly output: readonly string[];
}

export interface ShellGroup {
  readonly notes: readonly string[];
  readonly commands: readonly ShellCommand[];
}

/** What a walkthrough is written as: notes and command lines; the outputs come from running them. */
export type ShellScript = readonly { readonly notes: readonly string[]; readonly commands: readonly string[] }[];

/** `script`'s groups with these outputs, one list per command in order. */
export function withOutputs(script: ShellScript, outputs: readonly (readonly string[])[]): ShellGroup[] {
  let i = 0;
  return script.map((g) => ({ notes: g.notes, commands: g.commands.map((line) => ({ line, output: outputs[i++] ?? [] })) }));
}

/** The first line of a walkthrough names where the service listens; tests point it elsewhere. */
export const SVC_LINE = /^svc=\S+$/;

/** The fenced ```sh block following `anchor` (a heading or an HTML comment), fences excluded. */
export function shellBlock(text: string, anchor: string): string {
  const at = text.indexOf(anchor);
  if (at < 0) throw new Error(`no "${anchor}"`);
  const open = text.indexOf('\n```sh\n', at);
  if (open < 0) throw new Error(`no \`\`\`sh block after "${anchor}"`);
  const start = open + '\n```sh\n'.length;
  const end = text.indexOf('\n```\n', start - 1);
  return text.slice(start, end + 1);
}

/** `text` with the ```sh block following `anchor` replaced by `body` (fences kept). */
export function withShellBlock(text: string, anchor: string, body: string): string {
  const at = text.indexOf(anchor);
  const start = text.indexOf('\n```sh\n', at) + '\n```sh\n'.length;
  const end = text.indexOf('\n```\n', start - 1);
  return text.slice(0, start) + body + text.slice(end + 1);
}

export function parseShell(block: string): ShellGroup[] {
  const groups: { notes: string[]; commands: { line: string; output: string[] }[] }[] = [];
  let group: (typeof groups)[number] | undefined;
  for (const line of block.split('\n')) {
    if (line === '') {
      group = undefined;
      continue;
    }
    if (group === undefined) {
      group = { notes: [], commands: [] };
      groups.push(group);
    }
    const comment = line.startsWith('#') ? line.replace(/^# ?/, '') : undefined;
    const last = group.commands.at(-1);
    if (comment === undefined) group.commands.push({ line, output: [] });
    else if (last === undefined) group.notes.push(comment);
    else last.output.push(comment);
  }
  return groups;
}

export function renderShell(groups: readonly ShellGroup[]): string {
  return (
    groups
      .map((group) => [...group.notes.map((n) => `# ${n}`), ...group.commands.flatMap((c) => [c.line, ...c.output.map((o) => `# ${o}`)])].join('\n'))
      .join('\n\n') + '\n'
  );
}

/** Every command line of a block, in order. */
export function commandLines(groups: readonly ShellGroup[]): string[] {
  return groups.flatMap((g) => g.commands.map((c) => c.line));
}

/** A byte that no command prints: it marks where each command's output starts. */
const MARK = '\x1e';

/**
 * Runs `lines` in one bash process (so variables carry from line to line), with the `svc=` line
 * pointing at `origin`, and returns what each line printed, as lines. Standard error is kept
 * apart and returned for failure messages.
 */
export async function runShell(lines: readonly string[], origin: string): Promise<{ outputs: string[][]; stderr: string }> {
  const script = lines.map((line, i) => `printf '${MARK}%d\\n' ${String(i)}\n${SVC_LINE.test(line) ? `svc=${origin}` : line}`).join('\n') + '\n';
  const { stdout, stderr } = await run('bash', ['--noprofile', '--norc', '-c', script], { encoding: 'utf8', timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  const outputs = lines.map(() => [] as string[]);
  let current = -1;
  for (const line of stdout.split('\n')) {
    if (line.startsWith(MARK)) current = Number(line.slice(1));
    else if (current >= 0 && line !== '') outputs[current]?.push(line);
  }
  return { outputs, stderr };
}

/** The UUIDs of flush jobs and batches, and revisions: what differs from one run to the next. */
export function placeholders(line: string): string {
  return line
    .replace(/\b(fj|fb)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '$1-…')
    .replace(/"revision":\d+/g, '"revision":…');
}

/**
 * Runs `lines` against `origin` and returns what each printed, placeholders in. A problem answer
 * from a line that does not show `{status, code, detail}` fails here, so a scenario that breaks
 * is never documented as its error; so does anything random or timed left after the placeholders.
 */
export async function walk(lines: readonly string[], origin: string): Promise<string[][]> {
  const { outputs, stderr } = await runShell(lines, origin);
  if (stderr !== '') throw new Error(`the walkthrough wrote to standard error:\n${stderr}`);
  return outputs.map((output, i) => {
    const line = lines[i] ?? '';
    const shown = output.map(placeholders);
    for (const out of shown) {
      if ((out.includes('"type":"urn:problem') || out.includes('"code":"')) && !line.includes('{status, code, detail}')) throw new Error(`${line}\nanswered a problem: ${out}`);
      if (/^[45]\d\d$/.test(out)) throw new Error(`${line}\nanswered ${out}`);
      if (/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d{4}-\d\d-\d\dT\d\d:\d\d/.test(out)) throw new Error(`${line}\nshows an id or a time that changes per run: ${out}`);
    }
    return shown;
  });
}
