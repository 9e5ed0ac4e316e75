import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { flushQueryColumns, parsePageAddress, parsePageLength, type FlushQueryColumns, type FlushQueryRange } from '../../domain/index.js';
import { echoOf, flushQueryValidatorCompiler, FlushQueryReply, hexOf, parseFlushQueryBytes, PlainFlushQuery, serializeFlushQueryReply, type Echo } from '../flush-query-wire.js';
import { readCompactJson, sendJson } from '../json-bytes.js';
import { FreshQuery, problems, VmParams } from '../../contract/common.js';
import { FlushQueryAnswer, FlushQueryBody } from '../../contract/pin.js';
import { batchOf, checkBatch, domainIds, vmIdOf } from '../wire.js';

export default function decisionRoutes(app: FastifyInstance): void {
  // In this plugin only (its one route): the commonest body is read from its bytes into columns.
  readCompactJson(app, (body) => parseFlushQueryBytes(body));

  /** Any other body: each range parsed as before (its errors in range order), then as columns. */
  const columnsOf = (body: z.output<typeof FlushQueryBody>): { q: FlushQueryColumns; echo: Echo } => {
    const given = batchOf({ ranges: body.ranges }, app.limits.batchLimit);
    const ranges: FlushQueryRange[] = new Array<FlushQueryRange>(given.length);
    for (let i = 0; i < given.length; i++) {
      const r = given[i] as (typeof given)[number];
      ranges[i] = {
        iova: parsePageAddress(r.iova, 'iova'),
        pages: parsePageLength(r.length, 'length'),
        hpa: r.hpa === undefined ? undefined : parsePageAddress(r.hpa, 'hpa'),
        memType: r.memType,
        mmio: r.mmio,
        domains: domainIds(r.domains)
      };
    }
    const echo = echoOf(
      given.map((r, i) => hexOf(r.iova, (ranges[i] as FlushQueryRange).iova)),
      given.map((r, i) => hexOf(r.length, (ranges[i] as FlushQueryRange).pages))
    );
    return { q: flushQueryColumns(ranges), echo };
  };

  const decide = (request: { params: { vmId: string }; body: z.output<typeof FlushQueryBody> }): Buffer => {
    const vmId = vmIdOf(request.params);
    const body: unknown = request.body;
    const { op } = request.body;
    let q: FlushQueryColumns;
    let echo: Echo;
    if (body instanceof PlainFlushQuery) {
      checkBatch(body.iova.length, app.limits.batchLimit);
      q = body;
      echo = body.echo;
    } else {
      ({ q, echo } = columnsOf(request.body));
    }
    const answer = app.policy.mustFlush(vmId, op, q);
    app.activity.decided(vmId);
    // One result per requested range, in request order.
    return serializeFlushQueryReply(new FlushQueryReply(op, answer.decision, answer.after, echo, answer.required, answer.rules, answer.failClosed));
  };

  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/vms/:vmId/decisions/flush',
    {
      schema: {
        tags: ['decisions'],
        summary: 'Must I flush? (read-only)',
        description:
          'A dry run of the change it previews, classified by the same code: same verdict, same flush ranges, same errors, nothing changed. `map`: a range not pinned answers as a pin of it would (F1, C1, F4; 409 `VM_HAS_NO_DOMAINS`, `PIN_OVERLAP` within the batch); one wholly pinned already answers as a replay into `domains` (or its own domains) would (F2); one partly pinned is refused as the pin would be (409 `PIN_OVERLAP`). Without `hpa` a required flush is reported but its host range is left to the caller. `unmap`: as the unpin would (F3, F4; 404 `UNKNOWN_RANGE`, 409 `UNPIN_BISECTS`).',
        params: VmParams,
        querystring: FreshQuery,
        body: FlushQueryBody,
        response: { 200: FlushQueryAnswer, ...problems }
      },
      // Batches of 10,000 ranges: the body skips the per-field zod walk when it safely can, and
      // the answer is written as bytes (flush-query-wire.ts); the schemas above still define both.
      validatorCompiler: flushQueryValidatorCompiler
    },
    // Synchronous unless the caller asks for a fresher state, or asks a replica about a VM it does
    // not serve (it catches up on it first): no promise per decision. The answer is JSON bytes,
    // which Fastify sends as they are.
    (request, reply) => {
      const minRevision = request.query.minRevision;
      if (minRevision !== undefined || !app.policy.serves(vmIdOf(request.params))) {
        return app.policy.catchUp(minRevision ?? 0, vmIdOf(request.params)).then(async () => {
          sendJson(reply, decide(request));
          await reply;
        });
      }
      sendJson(reply, decide(request));
      return undefined;
    }
  );
}
