import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { actorOf } from '../plugins/auth.js';
import { z } from 'zod';
import { parsePageLength, type VmId } from '../../domain/index.js';
import { FreshQuery, page, PageQuery, problems, VmParams } from '../../contract/common.js';
import { Decision, requiredDecisionFields } from '../../contract/decision.js';
import { PolicyInput, PutVmBody, Vm } from '../../contract/vm.js';
import { decodeCursor, encodeCursor, vmIdOf, vmWire } from '../wire.js';
import { coreInput, given } from '../core-input.js';
import { decided } from './decided.js';

/** Ids of the VM's flush jobs not finished yet. */
function openJobs(app: FastifyInstance, vmId: VmId): string[] {
  return app.policy.openFlushJobs(vmId);
}

/** The VM policy's fields the core takes in another form: the WBINVD threshold in pages. */
const POLICY_FIELDS = {
  wbinvdAbove: { as: 'wbinvdAbovePages', from: given((value: string | number | null) => (value === null ? null : parsePageLength(value, 'policy.wbinvdAbove'))) }
} as const;

/** A PUT /v1/vms body as the core takes it; without a policy, the server default's (`{}`). */
function putVmInput(body: z.output<typeof PutVmBody>) {
  return coreInput(PutVmBody, body, { policy: (p) => (p === undefined ? {} : coreInput(PolicyInput, p, POLICY_FIELDS)) });
}

export const VmDecision = z.object({ ...requiredDecisionFields, vm: Vm, devices: Decision.shape.devices }).meta({ id: 'VmDecision' });

export default function vmRoutes(app: FastifyInstance): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/v1/vms',
    { schema: { tags: ['vms'], summary: 'List VMs (paged)',
        description: 'Every VM with its whole state, in id order: `limit` per page, `nextCursor` to continue.', querystring: PageQuery, response: { 200: page(Vm, 'VmPage'), 400: problems[400] } } },
    async (request) => {
      // With replicas, every VM is caught up on first (a listing is rare; no VM becomes served by it).
      await app.policy.catchUpAll();
      const after = decodeCursor(request.query.cursor);
      const items = app.policy.listVms(after, request.query.limit + 1);
      const more = items.length > request.query.limit;
      const shown = items.slice(0, request.query.limit);
      const last = shown[shown.length - 1];
      return { items: shown.map((v) => vmWire(v, openJobs(app, v.id))), ...(more && last !== undefined ? { nextCursor: encodeCursor(last.id) } : {}) };
    }
  );

  r.put(
    '/v1/vms/:vmId',
    {
      schema: {
        tags: ['vms'],
        summary: 'Create a VM or replace its policy',
        description:
          'The policy is the server default overlaid with `policy`, resolved now and kept as resolved: a restart under other server defaults does not change it. Making a policy stricter (e.g. to pessimistic) can expose domains: the answer then carries the F2 replay flush. A policy that now denies a bit already set lists the device in `devices` with the value that clears it; its exposure ends once the VMM reports the bit clear.',
        params: VmParams,
        body: PutVmBody,
        response: { 200: VmDecision, 201: VmDecision, ...problems }
      }
    },
    async (request, reply) => {
      const vmId = vmIdOf(request.params);
      const result = await app.policy.apply({ type: 'put-vm', vmId, ...putVmInput(request.body) }, actorOf(request));
      reply.code(result.created === true ? 201 : 200);
      return { ...await decided(app, request, vmId, 'put-vm', result), vm: vmWire(app.policy.vm(vmId), openJobs(app, vmId)) };
    }
  );

  r.get(
    '/v1/vms/:vmId',
    { schema: { tags: ['vms'], summary: 'The whole state of a VM',
        description: 'Domains (coherent, exposed), devices (their bit, the bit that governs them, whether they may no-snoop, their quirks), pinned totals, K1 and the revision. `?minRevision=` answers once this replica has applied that change of the VM.', params: VmParams, querystring: FreshQuery, response: { 200: Vm, 400: problems[400], 404: problems[404] } } },
    async (request) => {
      const vmId = vmIdOf(request.params);
      await app.policy.catchUp(request.query.minRevision ?? 0, vmId);
      return vmWire(app.policy.vm(vmId), openJobs(app, vmId));
    }
  );

  r.delete(
    '/v1/vms/:vmId',
    {
      schema: {
        tags: ['vms'],
        summary: 'Tear a VM down (F5)',
        description: 'Every pinned range is released with unpin semantics: ranges with flushOnUnpin are flushed first.',
        params: VmParams,
        response: { 200: Decision, 400: problems[400], 404: problems[404] }
      }
    },
    async (request) => {
      const vmId = vmIdOf(request.params);
      return await decided(app, request, vmId, 'delete-vm', app.policy.apply({ type: 'delete-vm', vmId }, actorOf(request)));
    }
  );
}
