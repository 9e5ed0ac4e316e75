import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { actorOf } from '../plugins/auth.js';
import { parsePageAddress, type VmId } from '../../domain/index.js';
import { page, PageQuery, problems, VmParams } from '../../contract/common.js';
import { Decision } from '../../contract/decision.js';
import { PinBody, PinnedRange, UnpinBody, WaitQuery } from '../../contract/pin.js';
import { batchOf, checkBatch, decodeCursor, encodeCursor, pinInput, pinnedWire, rangeInput, vmIdOf } from '../wire.js';
import { sendDecided, wants } from './decided.js';
import { HttpError } from '../errors.js';
import { readCompactJson } from '../json-bytes.js';
import { parseRangeBatchBytes, PlainRangeBatch, rangeBodyValidatorCompiler } from '../pin-wire.js';

const PINS = '/v1/vms/:vmId/pins';
const UNPINS = '/v1/vms/:vmId/unpins';

export default function pinRoutes(app: FastifyInstance): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  // In this plugin only: a compact pin or unpin batch is read from its bytes into page numbers (compiled-wire.ts).
  readCompactJson(app, (body, request) => {
    const url = request.routeOptions.url;
    return url === PINS ? parseRangeBatchBytes(body, true) : url === UNPINS ? parseRangeBatchBytes(body, false) : undefined;
  });

  r.post(
    PINS,
    {
      schema: {
        tags: ['pins'],
        summary: 'Pin and map one range or a batch (F1)',
        description:
          'Perform `flush` (`when: before-map`) before the range is mapped and reachable by DMA. A batch (`{"ranges": [...]}`, at most the batch limit, 10,000 by default) is all or nothing. Overlaps are refused with 409 PIN_OVERLAP.',
        params: VmParams,
        querystring: WaitQuery,
        body: PinBody,
        response: { 200: Decision, ...problems }
      },
      validatorCompiler: rangeBodyValidatorCompiler(true)
    },
    async (request, reply) => {
      const vmId = vmIdOf(request.params);
      const body: unknown = request.body;
      const ranges = body instanceof PlainRangeBatch ? (checkBatch(body.read.count, app.limits.batchLimit), body.pins()) : batchOf(request.body, app.limits.batchLimit).map(pinInput);
      return await sendDecided(app, request, reply, vmId, 'pin', app.policy.apply({ type: 'pin', vmId, ranges }, actorOf(request)), wants(request.query));
    }
  );

  r.post(
    UNPINS,
    {
      schema: {
        tags: ['pins'],
        summary: 'Unmap and unpin one range or a batch (F3)',
        description: 'Unmap from the IOMMU, perform `flush` (`when: after-unmap`), then release the pages. Whole pinned ranges only: cutting one in two is refused with 409 UNPIN_BISECTS; a range with nothing pinned is 404 UNKNOWN_RANGE.',
        params: VmParams,
        querystring: WaitQuery,
        body: UnpinBody,
        response: { 200: Decision, ...problems }
      },
      validatorCompiler: rangeBodyValidatorCompiler(false)
    },
    async (request, reply) => {
      const vmId = vmIdOf(request.params);
      const body: unknown = request.body;
      const ranges = body instanceof PlainRangeBatch ? (checkBatch(body.read.count, app.limits.batchLimit), body.ranges()) : batchOf(request.body, app.limits.batchLimit).map(rangeInput);
      return await sendDecided(app, request, reply, vmId, 'unpin', app.policy.apply({ type: 'unpin', vmId, ranges }, actorOf(request)), wants(request.query));
    }
  );

  r.get(
    '/v1/vms/:vmId/pins',
    { schema: { tags: ['pins'], summary: 'Pinned ranges in IOVA order (paged)',
        description: 'Each pinned range with its host address, memory type, mmio, flushOnUnpin flag and domains: `limit` per page, `nextCursor` to continue.', params: VmParams, querystring: PageQuery, response: { 200: page(PinnedRange, 'PinnedRangePage'), 400: problems[400], 404: problems[404] } } },
    async (request) => {
      const vmId: VmId = vmIdOf(request.params);
      await app.policy.catchUp(request.query.minRevision ?? 0, vmId);
      const from = cursorPage(decodeCursor(request.query.cursor));
      const items = app.policy.pins(vmId, from, request.query.limit + 1);
      const shown = items.slice(0, request.query.limit);
      const next = items[request.query.limit];
      return { items: shown.map(pinnedWire), ...(next === undefined ? {} : { nextCursor: encodeCursor(pinnedWire(next).iova) }) };
    }
  );
}

/** A pins cursor holds the hex IOVA to resume at. */
function cursorPage(position: string | undefined): number {
  if (position === undefined) return 0;
  try {
    return parsePageAddress(position, 'cursor');
  } catch {
    throw new HttpError('INVALID_CURSOR', 'cursor is not one this service issued');
  }
}
