import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { actorOf } from '../plugins/auth.js';
import { parseDomainId } from '../../domain/index.js';
import { DomainParams, problems } from '../../contract/common.js';
import { Decision } from '../../contract/decision.js';
import { PutDomainBody } from '../../contract/vm.js';
import { vmIdOf } from '../wire.js';
import { decided } from './decided.js';

export default function domainRoutes(app: FastifyInstance): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.put(
    '/v1/vms/:vmId/domains/:domainId',
    {
      schema: {
        tags: ['domains'],
        summary: 'Attach or change an IOMMU domain',
        description:
          'A domain that does not enforce cache coherency and becomes exposed triggers the F2 replay of pinned ranges. A coherency change that makes the policy deny a bit already set lists the device in `devices` with the value that clears it.',
        params: DomainParams,
        body: PutDomainBody,
        response: { 200: Decision, 201: Decision, ...problems }
      }
    },
    async (request, reply) => {
      const vmId = vmIdOf(request.params);
      const result = await app.policy.apply({
        type: 'put-domain',
        vmId,
        domainId: parseDomainId(request.params.domainId),
        enforceCacheCoherency: request.body.enforceCacheCoherency,
        iommu: request.body.iommu ?? null
      }, actorOf(request));
      reply.code(result.created === true ? 201 : 200);
      return await decided(app, request, vmId, 'put-domain', result);
    }
  );

  r.delete(
    '/v1/vms/:vmId/domains/:domainId',
    {
      schema: {
        tags: ['domains'],
        summary: 'Remove an IOMMU domain',
        description: 'Refused (409 DOMAIN_HAS_DEVICES) while devices are attached. Removing the last domain unmaps and releases every range (F5).',
        params: DomainParams,
        response: { 200: Decision, ...problems }
      }
    },
    async (request) => {
      const vmId = vmIdOf(request.params);
      return await decided(app, request, vmId, 'delete-domain', app.policy.apply({ type: 'delete-domain', vmId, domainId: parseDomainId(request.params.domainId) }, actorOf(request)));
    }
  );
}
