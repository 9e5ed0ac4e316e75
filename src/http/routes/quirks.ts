import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { actorOf } from '../plugins/auth.js';
import { flushRangeCount, ON_ENABLE, parseQuirkFile, POLICY_MODES, quirkToWire, type Decision, type Quirk, type VmId } from '../../domain/index.js';
import { problems } from '../../contract/common.js';
import { PolicyDefaults } from '../../contract/policy.js';
import { PutQuirksAnswer, QuirkAdditions, QuirkList, QuirkListAnswer } from '../../contract/quirk.js';
import { decisionWire } from '../wire.js';

export default function quirkRoutes(app: FastifyInstance): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/v1/quirks',
    {
      schema: {
        tags: ['quirks'],
        summary: 'The quirk list',
        description:
          'The list in force is the one the store keeps: a restart with another QUIRKS_FILE does not change it (`configured.inForce` is then false, and the log says so); PUT /v1/quirks applies a list, POST /v1/quirks adds or replaces entries, with their flushes.',
        response: { 200: QuirkListAnswer }
      }
    },
    async () => {
      await app.policy.settledReads();
      const configured = app.policy.configuredQuirks();
      return { quirks: app.policy.quirks().map(quirkToWire), configured: { inForce: configured.inForce, quirks: configured.quirks.map(quirkToWire) } };
    }
  );

  r.put(
    '/v1/quirks',
    {
      schema: {
        tags: ['quirks'],
        summary: 'Replace the quirk list',
        description:
          'Replaces the whole list (the shipped entries too: to add or change a few entries, POST /v1/quirks). A device newly quirked ignores-nosnoop-enable exposes its domain: the affected VMs are listed with their F2 replay flushes.',
        body: QuirkList,
        response: { 200: PutQuirksAnswer, 400: problems[400] }
      }
    },
    (request) => changeQuirks(app, request, parseQuirkFile(request.body), false)
  );

  r.post(
    '/v1/quirks',
    {
      schema: {
        tags: ['quirks'],
        summary: 'Add or replace quirk entries',
        description:
          'Merges the entries into the list in force, as it is when the change is applied (concurrent changes, on any replica, all keep their entries): each replaces the entry for the same devices (the same vendorId, deviceMask and deviceId under it), or is added. Two entries of the body for the same devices are refused (INVALID_QUIRK). Answered as PUT /v1/quirks is: the list now in force, and the VMs whose domains the change exposed with their F2 replay flushes.',
        body: QuirkAdditions,
        response: { 200: PutQuirksAnswer, 400: problems[400] }
      }
    },
    (request) => changeQuirks(app, request, parseQuirkFile(request.body), true)
  );

  r.get('/v1/policy', { schema: { tags: ['policy'], summary: 'Server policy defaults and choices',
      description: 'What a VM gets when its PUT leaves a policy field unset, and the values each field allows.', response: { 200: PolicyDefaults } } }, () => ({
    defaults: { ...app.policy.defaults },
    modes: [...POLICY_MODES],
    onEnable: [...ON_ENABLE],
    flushMethods: { x86_64: ['clflushopt', 'clflush'] as ('clflushopt' | 'clflush')[], aarch64: ['dc-civac'] as 'dc-civac'[] },
    batchLimit: app.limits.batchLimit
  }));
}

/**
 * PUT and POST /v1/quirks: one command (put-quirks; `merge` for POST, merged by the core into the
 * list in force when it is applied, never into one read here), answered with the list it put in
 * force and each VM it decided for.
 */
async function changeQuirks(app: FastifyInstance, request: FastifyRequest, quirks: readonly Quirk[], merge: boolean): Promise<z.input<typeof PutQuirksAnswer>> {
  const result = await app.policy.apply({ type: 'put-quirks', quirks, ...(merge ? { merge } : {}) }, actorOf(request));
  const vms = [...(result.vms ?? new Map<VmId, Decision>())].map(([vmId, d]) => {
    request.log.info({ decision: 'put-quirks', ...(merge ? { merge } : {}), vmId, rules: d.reasons.map((x) => x.rule), flushRanges: flushRangeCount(d.flush) }, 'decision');
    return { vmId, ...decisionWire(d, result.revision ?? app.policy.revisionOf(vmId), { jobId: result.vmJobIds?.get(vmId), after: result.vmAfter?.get(vmId) }) };
  });
  const inForce = result.quirks ?? quirks;
  request.log.info({ quirks: inForce.length, ...(merge ? { merged: quirks.length } : {}) }, merge ? 'quirk entries merged' : 'quirk list replaced');
  return { quirks: inForce.map(quirkToWire), vms, ...(result.revision === undefined ? {} : { revision: result.revision }) };
}
