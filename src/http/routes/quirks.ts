import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { actorOf } from '../plugins/auth.js';
import { flushRangeCount, ON_ENABLE, parseQuirkFile, POLICY_MODES, quirkToWire, type Decision, type VmId } from '../../domain/index.js';
import { problems } from '../../contract/common.js';
import { PolicyDefaults } from '../../contract/policy.js';
import { PutQuirksAnswer, QuirkList, QuirkListAnswer } from '../../contract/quirk.js';
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
          'The list in force is the one the store keeps: a restart with another QUIRKS_FILE does not change it (`configured.inForce` is then false, and the log says so); PUT /v1/quirks applies a list, with its flushes.',
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
        description: 'A device newly quirked ignores-nosnoop-enable exposes its domain: the affected VMs are listed with their F2 replay flushes.',
        body: QuirkList,
        response: { 200: PutQuirksAnswer, 400: problems[400] }
      }
    },
    async (request) => {
      const quirks = parseQuirkFile(request.body);
      const result = await app.policy.apply({ type: 'put-quirks', quirks }, actorOf(request));
      const vms = [...(result.vms ?? new Map<VmId, Decision>())].map(([vmId, d]) => {
        request.log.info({ decision: 'put-quirks', vmId, rules: d.reasons.map((x) => x.rule), flushRanges: flushRangeCount(d.flush) }, 'decision');
        return { vmId, ...decisionWire(d, result.revision ?? app.policy.revisionOf(vmId), { jobId: result.vmJobIds?.get(vmId), after: result.vmAfter?.get(vmId) }) };
      });
      request.log.info({ quirks: quirks.length }, 'quirk list replaced');
      return { quirks: quirks.map(quirkToWire), vms, ...(result.revision === undefined ? {} : { revision: result.revision }) };
    }
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
