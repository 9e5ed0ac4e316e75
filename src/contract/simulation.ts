import { z } from 'zod';
import { ON_ENABLE, POLICY_MODES } from '../domain/index.js';
import { REFERENCE_TRACES } from '../sim/reference-traces.js';

export const SimulationRequest = z
  .object({
    reference: z.enum(REFERENCE_TRACES).optional().describe('A reference trace by name'),
    trace: z.string().max(64 * 1024 * 1024).optional().describe('A trace as JSON Lines text (one event per line; the format is in docs/simulations.md)'),
    modes: z.array(z.enum(POLICY_MODES)).min(1).max(POLICY_MODES.length).optional().describe('Modes to replay; default: every mode')
  })
  .refine((b) => (b.reference === undefined) !== (b.trace === undefined), { message: 'give exactly one of reference and trace', path: ['reference'] })
  .meta({ id: 'SimulationRequest', description: 'What to simulate: a reference trace or your own' });

const Bytes = z.number().int().nonnegative();

const ModeResult = z
  .object({
    mode: z.enum(POLICY_MODES),
    events: z.number().int(),
    commands: z.number().int().describe('Commands the replay sent to the decision core (runs and batches expanded)'),
    rejected: z.record(z.string(), z.number().int()).describe('Commands the core rejected, by error code'),
    flush: z.object({
      jobs: z.number().int().describe('Decisions that demanded a flush (one flush job each)'),
      bytes: Bytes,
      byCause: z.object({ pin: Bytes, unpin: Bytes, replay: Bytes, teardown: Bytes }),
      pessimisticBytes: Bytes.describe('What the pessimistic policy would have flushed for the same decisions')
    }),
    cost: z.object({ cycles: z.number().nonnegative(), seconds: z.number().nonnegative() }).describe('Modelled flush cost (per-architecture cost model)'),
    devctl: z.object({ allow: z.number().int(), deny: z.number().int(), ignore: z.number().int() }).describe('Verdicts on the trace\'s DEVCTL writes'),
    kvmNoncoherentDma: z.boolean().describe('K1 held for a VM at some point'),
    violations: z.object({
      total: z.number().int().describe('Hazards the coherency model saw: 0 for a safe policy'),
      leakPages: z.number().int(),
      stalePages: z.number().int(),
      samples: z.array(
        z.object({ kind: z.enum(['leak', 'stale']), event: z.number().int().describe('1-based trace event'), vm: z.string(), pages: z.number().int(), detail: z.string() })
      )
    })
  })
  .meta({ id: 'SimulationMode', description: 'One policy mode replayed against the coherency model' });

export const Simulation = z
  .object({
    id: z.string(),
    createdAt: z.string(),
    trace: z.object({
      name: z.string(),
      description: z.string().nullable(),
      events: z.number().int(),
      ranges: z.number().int().describe('Pinned and unpinned ranges, repeats expanded'),
      sha256: z.string().describe('SHA-256 of the JSON Lines text replayed')
    }),
    config: z
      .object({ onEnable: z.enum(ON_ENABLE), exemptNeedsNoSnoop: z.boolean(), quirks: z.number().int().describe('Entries in the quirk list used') })
      .describe("The policy defaults and quirk list the trace was replayed under: the server's own"),
    modes: z.array(ModeResult),
    summary: z.object({
      safe: z.boolean().describe('No mode let the model see a hazard'),
      bytesSavedVsPessimistic: z.record(z.string(), z.number()).describe('Per mode: share of the pessimistic bytes not flushed (0..1)')
    }),
    timing: z.object({ wallMs: z.number(), replayMs: z.record(z.string(), z.number()) }).describe('Wall-clock figures: the only part that differs between identical runs'),
    links: z.object({ self: z.string(), chart: z.string() })
  })
  .meta({ id: 'Simulation', description: 'A what-if simulation: the same trace under every policy mode' });

export const SimulationParams = z.object({ id: z.string().max(64) });
