import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { renderChart } from '../../sim/chart.js';
import type { SimulationResult, Simulator } from '../../sim/simulator.js';
import { HttpError } from '../errors.js';
import { problems } from '../../contract/common.js';
import { Simulation, SimulationParams, SimulationRequest } from '../../contract/simulation.js';

/** A trace upload may be large: 200,000 events are about 17 MiB of JSON Lines. */
const TRACE_BODY_LIMIT = 64 * 1024 * 1024;

function withLinks(result: SimulationResult): z.input<typeof Simulation> {
  const self = `/v1/simulations/${result.id}`;
  return {
    ...result,
    modes: result.modes.map((m) => ({ ...m, violations: { ...m.violations, samples: [...m.violations.samples] } })),
    summary: { ...result.summary, bytesSavedVsPessimistic: { ...result.summary.bytesSavedVsPessimistic } }, links: { self, chart: `${self}/chart.svg` }
  };
}

export default function simulationRoutes(app: FastifyInstance, opts: { simulator: Simulator }): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const simulator = opts.simulator;

  r.post(
    '/v1/simulations',
    {
      bodyLimit: TRACE_BODY_LIMIT,
      schema: {
        tags: ['simulations'],
        summary: 'What if? Replay a trace under every policy mode',
        description:
          'Replays a reference trace or your own (JSON Lines) under each policy mode in the worker pool, against the coherency model, with the server\'s quirk list. Per mode: bytes flushed, modelled cycles and seconds, flush jobs and model violations (0 for a safe policy). Nothing in the service\'s state changes. The answer is also kept for GET (the most recent 64).',
        body: SimulationRequest,
        response: { 201: Simulation, ...problems, 503: problems[400] }
      }
    },
    async (request, reply) => {
      const body = request.body;
      const source = body.reference !== undefined ? { reference: body.reference } : { text: body.trace ?? '' };
      // Under the server's own defaults and quirk list, so a what-if answers for this server.
      const result = await simulator.run(source, app.policy.quirks(), body.modes, app.policy.defaults);
      request.log.info({ simulation: result.id, trace: result.trace.name, events: result.trace.events, safe: result.summary.safe }, 'simulation done');
      reply.code(201).header('location', `/v1/simulations/${result.id}`);
      return withLinks(result);
    }
  );

  const find = (id: string): SimulationResult => {
    const result = simulator.get(id);
    if (result === undefined) throw new HttpError('UNKNOWN_SIMULATION', `no simulation ${id} (results are kept in memory, the most recent 64)`);
    return result;
  };

  r.get(
    '/v1/simulations/:id',
    { schema: { tags: ['simulations'], summary: 'A simulation result',
        description: 'The result of POST /v1/simulations: per mode the bytes flushed by cause, what pessimistic would flush, flush jobs, modelled cost, DEVCTL verdicts and violations.', params: SimulationParams, response: { 200: Simulation, 404: problems[404] } } },
    (request) => withLinks(find(request.params.id))
  );

  r.get(
    '/v1/simulations/:id/chart.svg',
    {
      schema: {
        tags: ['simulations'],
        summary: 'A simulation as an SVG bar chart (one bar per mode)',
        description: 'One bar per mode, its height the bytes flushed, labelled with the bytes, the modelled time, the flush jobs and the verdict.',
        params: SimulationParams,
        produces: ['image/svg+xml'],
        response: { 200: z.string().describe('SVG document'), 404: problems[404] }
      }
    },
    (request, reply) => {
      const svg = renderChart(find(request.params.id));
      reply.type('image/svg+xml; charset=utf-8').header('cache-control', 'private, max-age=3600');
      return svg;
    }
  );
}
