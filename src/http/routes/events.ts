/**
 * GET /v1/vms/{vmId}/events: the VM's events as Server-Sent Events, for its VMM (`vmm` scope of
 * the VM, or `read`): `decision` (every change to the VM, whoever made it, with its decision:
 * flush ranges, `when`, `after`, reasons, DEVCTL values to write), `policy`, `deleted`,
 * `flush-job` (its jobs as they are planned and acknowledged) and `reset` (events asked for
 * with `Last-Event-ID` are no longer held: re-read the VM). Changes made through another replica
 * sharing the store arrive as they do through this one. Comment lines keep an idle stream alive
 * through proxies.
 */
import type { FastifyInstance } from 'fastify';
import type { Gauge } from 'prom-client';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { VmEvent } from '../../service/vm-events.js';
import { Problem, problems, VmParams } from '../../contract/common.js';
import { EventData } from '../../contract/events.js';
import { decisionWire, vmIdOf } from '../wire.js';
import { HttpError } from '../errors.js';
import { jobWire } from './flush-jobs.js';

/** The data line of an event. */
function dataOf(event: VmEvent): unknown {
  switch (event.type) {
    case 'flush-job':
      return jobWire(event.job);
    case 'reset':
      return { vmId: event.vmId, reason: event.reason };
    case 'decision':
    case 'policy':
    case 'deleted':
      return {
        vmId: event.vmId,
        ...('command' in event ? { command: event.command } : {}),
        actor: event.actor,
        ...decisionWire(event.decision, event.revision, { jobId: event.jobId, after: 'after' in event ? event.after : undefined })
      };
  }
}

export function sseFrame(event: VmEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(dataOf(event))}\n\n`;
}

/** Bytes a subscriber may fall behind by before its stream is dropped (it resumes by id). */
const MAX_BEHIND_BYTES = 4 * 1024 * 1024;

export default function eventRoutes(app: FastifyInstance, opts: { heartbeatMs?: number; streamsPerClient?: number; maxBehindBytes?: number; subscribers?: Pick<Gauge, 'inc' | 'dec'> }): void {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxBehindBytes = opts.maxBehindBytes ?? MAX_BEHIND_BYTES;
  const streamsPerClient = opts.streamsPerClient ?? 16;
  const open = new Set<(why?: string) => void>();
  /** Open streams per token (or per address without tokens). */
  const perClient = new Map<string, number>();
  // Streams never end by themselves: end them when the server closes.
  app.addHook('preClose', (done) => {
    for (const end of open) end('server closing');
    done();
  });

  app.withTypeProvider<ZodTypeProvider>().get(
    '/v1/vms/:vmId/events',
    {
      schema: {
        tags: ['vms'],
        summary: "The VM's events (Server-Sent Events, text/event-stream)",
        description:
          'Each event has an `id` and a type: `decision` (a change to this VM, whoever made it, with its decision as the change answered it; the `actor` and `revision` tell a VMM its own changes from others), `policy` (the VM\'s policy replaced), `deleted`, `flush-job` (one of its flush jobs planned or acknowledged: a `pending` job is the VMM\'s to flush and acknowledge) and `reset` (the events after `Last-Event-ID` are no longer held, or come from an earlier start or another replica: re-read the VM). Changes made through another replica sharing the store arrive as they do through this one. Send `Last-Event-ID` to resume. Comment lines every 15 s keep an idle stream open. A subscriber more than 4 MiB behind gets a `dropped` event and the stream ends (it resumes by id); a token may hold 16 streams at once (429 TOO_MANY_STREAMS beyond).',
        params: VmParams,
        headers: z.object({ 'last-event-id': z.string().max(64).optional() }),
        response: {
          200: { description: "The VM's events, as Server-Sent Events", content: { 'text/event-stream': { schema: EventData } } },
          400: problems[400],
          404: problems[404],
          429: Problem
        }
      }
    },
    async (request, reply) => {
      const vmId = vmIdOf(request.params);
      // A replica that did not serve the VM catches up on it first (and follows it while subscribed).
      await app.policy.catchUp(0, vmId);
      app.policy.vm(vmId); // 404 for an unknown VM
      const client = request.principal?.id ?? `address ${request.ip}`;
      const streams = perClient.get(client) ?? 0;
      if (streams >= streamsPerClient) throw new HttpError('TOO_MANY_STREAMS', `${client} has ${streams} event streams open already (at most ${streamsPerClient}); close one first`);
      perClient.set(client, streams + 1);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no', 'x-request-id': request.id });
      raw.write(': events of VM ' + vmId + '\n\n');
      // Counted from the stream's headers until it ends (coherency_event_subscribers).
      opts.subscribers?.inc();
      // Connects and disconnects are logged at info: streams are few and long-lived.
      const opened = Date.now();
      let sent = 0;
      let reason = 'client closed';
      request.log.info({ vmId, client, lastEventId: request.headers['last-event-id'] ?? null, streams: streams + 1 }, 'event stream opened');
      let ended = false;
      let unsubscribe = (): void => undefined;
      const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), heartbeatMs);
      const end = (why?: string): void => {
        if (ended) return;
        if (why !== undefined) reason = why;
        ended = true;
        opts.subscribers?.dec();
        perClient.set(client, (perClient.get(client) ?? 1) - 1);
        if (perClient.get(client) === 0) perClient.delete(client);
        clearInterval(heartbeat);
        unsubscribe();
        open.delete(end);
        raw.end();
        request.log.info({ vmId, client, durationMs: Date.now() - opened, events: sent, reason }, 'event stream closed');
      };
      unsubscribe = app.policy.events.subscribe(vmId, request.headers['last-event-id'], (event) => {
        if (ended) return;
        if (raw.writableLength > maxBehindBytes) {
          // Too slow to keep up: dropped with the reason, it resumes from the last id it read.
          raw.write(`event: dropped\ndata: ${JSON.stringify({ vmId, reason: `the subscriber fell ${raw.writableLength} bytes behind; reconnect with Last-Event-ID to resume` })}\n\n`);
          reason = 'dropped: too far behind';
          end();
          return;
        }
        raw.write(sseFrame(event));
        sent++;
      });
      if (ended) unsubscribe();
      open.add(end);
      // The response closes when the client goes away (or when the stream ends here).
      raw.once('close', () => end());
    }
  );
}
