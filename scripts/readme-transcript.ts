/**
 * The README's walkthrough ("### A GPU VM's life with curl"), generated: its commands are run
 * with bash, curl and jq against a real server (src/server.ts in its default configuration, on
 * a free port and a fresh data directory) and what they print is written under each of them.
 * `npm run docs` rewrites the block in README.md; without --write it prints the block. A test
 * runs the README's block twice in a row on one fresh server and checks both runs print what
 * the README shows: the walkthrough acknowledges its flush jobs and deletes its VM, so it ends
 * where it started.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadConfig } from '../src/config.js';
import { startServer, type ServerProcess } from '../test/helpers/server-process.js';
import { renderShell, shellBlock, walk, withOutputs as withScriptOutputs, withShellBlock, type ShellGroup, type ShellScript } from './readme-shell.js';

export const README_PATH = new URL('../README.md', import.meta.url);

export const HEADING = "### A GPU VM's life with curl";

const JSON_HEADER = "-H 'content-type: application/json'";
const VM = '{domains: [.domains[] | {id, coherent, exposed}], devices: [.devices[] | {bdf, nosnoop, quirks}], pinned, openFlushJobs, kvmNoncoherentDma}';

/** The walkthrough: notes and commands; the outputs come from running them. */
const SCRIPT: ShellScript = [
  { notes: ['Where the service listens (`npm start` serves here by default).'], commands: [`svc=http://${loadConfig({}).host}:${String(loadConfig({}).port)}`] },
  {
    notes: ['A VM (its policy: trap mode, the rest from the server defaults), a non-coherent IOMMU', "domain, and Intel's iGPU in it with No Snoop off:"],
    commands: [
      `curl -s -X PUT $svc/v1/vms/vm1 ${JSON_HEADER} -d '{"arch":"x86_64","policy":{"mode":"trap"}}' | jq -c '{revision, policy: .vm.policy}'`,
      `curl -s -X PUT $svc/v1/vms/vm1/domains/d0 ${JSON_HEADER} -d '{"enforceCacheCoherency":false}' | jq -c .`,
      `curl -s -X PUT $svc/v1/vms/vm1/devices/0000:00:02.0 ${JSON_HEADER} -d '{"domainId":"d0","vendorId":"0x8086","deviceId":"0x9a49","function":"pf","nosnoop":"disabled"}' | jq -c .`
    ]
  },
  {
    notes: ['Pin 8 GiB of guest RAM: no flush, no device in d0 may no-snoop yet.'],
    commands: [`curl -s -X POST $svc/v1/vms/vm1/pins ${JSON_HEADER} -d '{"iova":"0x0","hpa":"0x100000000","length":"0x200000000"}' | jq -c .`]
  },
  {
    notes: ['The guest driver enables No Snoop: allowed (the iGPU is quirked needs-nosnoop), after the', '8 GiB already pinned are flushed (F2). The VMM flushes them, then acknowledges the job:'],
    commands: [
      `answer=$(curl -s -X POST $svc/v1/vms/vm1/devices/0000:00:02.0/devctl ${JSON_HEADER} -d '{"nosnoopEnable":true}')`,
      'echo "$answer" | jq -c .',
      'job=$(echo "$answer" | jq -r .flush.jobId)',
      "curl -s -X POST $svc/v1/flush-jobs/$job/ack | jq -c '{id, cause, state}'"
    ]
  },
  {
    notes: ['The VM now: d0 exposed, the bit enabled, the 8 GiB flagged to be flushed at unpin, no flush', 'waiting for its acknowledgement:'],
    commands: [`curl -s $svc/v1/vms/vm1 | jq -c '${VM}'`]
  },
  {
    notes: ['A pin overlapping one already pinned is refused, and nothing changes:'],
    commands: [`curl -s -X POST $svc/v1/vms/vm1/pins ${JSON_HEADER} -d '{"iova":"0x1000","hpa":"0x0","length":"0x1000"}' | jq -c '{status, code, detail}'`]
  },
  {
    notes: ['Unpin: unmap, flush (the flag is set), acknowledge, then release the pages.'],
    commands: [
      `answer=$(curl -s -X POST $svc/v1/vms/vm1/unpins ${JSON_HEADER} -d '{"iova":"0x0","length":"0x200000000"}')`,
      'echo "$answer" | jq -c .',
      'job=$(echo "$answer" | jq -r .flush.jobId)',
      "curl -s -X POST $svc/v1/flush-jobs/$job/ack | jq -c '{id, cause, state}'"
    ]
  },
  {
    notes: ['Teardown: nothing is pinned or waiting any more, so there is nothing to flush.'],
    commands: ['curl -s -X DELETE $svc/v1/vms/vm1 | jq -c .']
  }
];

/** The lines the walkthrough runs, in order. */
export const COMMANDS: readonly string[] = SCRIPT.flatMap((g) => g.commands);

/** The real server `npm start` runs, in its default configuration, on a free port and a fresh data directory. */
export async function freshServer(): Promise<ServerProcess & { close(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'coherency-walkthrough-'));
  try {
    const server = await startServer({ DATA_DIR: dataDir });
    return {
      ...server,
      async close() {
        await server.kill('SIGTERM');
        rmSync(dataDir, { recursive: true, force: true });
      }
    };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** The block's groups with these outputs, one list per command in order. */
export function withOutputs(outputs: readonly (readonly string[])[]): ShellGroup[] {
  return withScriptOutputs(SCRIPT, outputs);
}

/** The block as README.md should hold it: the walkthrough run once on a fresh server. */
export async function renderTranscript(): Promise<string> {
  const server = await freshServer();
  try {
    return renderShell(withOutputs(await walk(COMMANDS, server.url)));
  } finally {
    await server.close();
  }
}

/** The block README.md holds now. */
export function readmeTranscript(readme: string): string {
  return shellBlock(readme, `\n${HEADING}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const transcript = await renderTranscript();
  if (process.argv.includes('--write')) {
    const readme = readFileSync(README_PATH, 'utf8');
    const updated = withShellBlock(readme, `\n${HEADING}\n`, transcript);
    if (updated === readme) console.log(`${README_PATH.pathname} is up to date`);
    else {
      writeFileSync(README_PATH, updated);
      console.log(`wrote the walkthrough to ${README_PATH.pathname}`);
    }
  } else process.stdout.write(transcript);
}
