import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { actorOf } from '../plugins/auth.js';
import { parseDomainId, parsePciAddress, ruleRanges, type DevctlWrite, type DeviceInput } from '../../domain/index.js';
import { DeviceParams, problems } from '../../contract/common.js';
import { DevctlDecision, DeviceDecision } from '../../contract/decision.js';
import { DevctlBody, PutDeviceBody, ResetBody } from '../../contract/vm.js';
import { WaitQuery } from '../../contract/pin.js';
import { coreInput, given, orNull } from '../core-input.js';
import { bdfOf, hex16, vmIdOf } from '../wire.js';
import { decided, inOrder, wants } from './decided.js';

/** The device fields the core takes in another form: ids parsed (absent or null: none), 16-bit values read from hex. */
const DEVICE_FIELDS = {
  domainId: orNull(parseDomainId),
  vendorId: hex16,
  deviceId: hex16,
  physfn: orNull(parsePciAddress),
  devctl: given(hex16)
} as const;

/** A device PUT as the core takes it. */
function deviceInput(params: { bdf: string }, body: z.output<typeof PutDeviceBody>): DeviceInput {
  return { bdf: bdfOf(params), ...coreInput(PutDeviceBody, body, DEVICE_FIELDS) };
}

/** A DEVCTL write as the core takes it, and whether it is a dry run. */
function devctlInput(body: z.output<typeof DevctlBody>): { write: DevctlWrite; dryRun: boolean } {
  const { dryRun, ...write } = coreInput(DevctlBody, body, { value: given(hex16) });
  return { write, dryRun };
}

export default function deviceRoutes(app: FastifyInstance): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.put(
    '/v1/vms/:vmId/devices/:bdf',
    {
      schema: {
        tags: ['devices'],
        summary: 'Assign, move or report a device',
        description:
          'Also how the VMM reports the Enable No Snoop state it reads back: a cleared bit counts only once reported here (`disabled`), after writing the `hardwareValue` a devctl, reset or policy answer gave. A device that may no-snoop exposes its non-coherent domain (F2). A device attached with its bit set where the policy denies it (virtualize-zero, or trap whose onEnable denies it) is answered with the `hardwareValue` that clears it, to be written before the guest gets the device: nothing is replayed (W3, W4); so is one attached `unknown` under those policies (it counts as able to no-snoop until reported `disabled`). A report of a device already in its domain saying the bit reads 1 where the policy denies it is answered with its clear in the same answer. A report whose `devctl` has bit 11 set while `nosnoop` says `disabled` or `hardwired-zero` contradicts itself: 400 `INVALID_DEVICE`, nothing changed.',
        params: DeviceParams,
        querystring: WaitQuery,
        body: PutDeviceBody,
        response: { 200: DeviceDecision, 201: DeviceDecision, ...problems }
      }
    },
    async (request, reply) => {
      const vmId = vmIdOf(request.params);
      await inOrder(app, vmId, wants(request.query));
      const result = await app.policy.apply({ type: 'put-device', vmId, device: deviceInput(request.params, request.body) }, actorOf(request));
      reply.code(result.created === true ? 201 : 200);
      return await decided(app, request, vmId, 'put-device', result, wants(request.query));
    }
  );

  r.delete(
    '/v1/vms/:vmId/devices/:bdf',
    { schema: { tags: ['devices'], summary: 'Remove a device from the VM',
        description: 'Unassigns the device and answers the decision it causes: the rules that fired and K1 for the VM.', params: DeviceParams, response: { 200: DeviceDecision, ...problems } } },
    async (request) => {
      const vmId = vmIdOf(request.params);
      return await decided(app, request, vmId, 'delete-device', app.policy.apply({ type: 'delete-device', vmId, bdf: bdfOf(request.params) }, actorOf(request)));
    }
  );

  r.post(
    '/v1/vms/:vmId/devices/:bdf/reset',
    {
      schema: {
        tags: ['devices'],
        summary: 'Report a device reset (FLR or bus reset), before it happens (R1)',
        description:
          'By default the reset restores config space, as every reset vfio-pci performs does: Enable No Snoop keeps its state and nothing is replayed. With `{"restoresConfig":false}` the bit returns to 1 unless hardwired to 0; the device counts as enabled until the VMM reports otherwise, and the answer carries the replay flush and the DEVCTL value that re-applies the policy.',
        params: DeviceParams,
        querystring: WaitQuery,
        body: ResetBody,
        response: { 200: DeviceDecision, ...problems }
      }
    },
    async (request) => {
      const vmId = vmIdOf(request.params);
      await inOrder(app, vmId, wants(request.query));
      const reset = { type: 'reset-device', vmId, bdf: bdfOf(request.params), ...request.body } as const;
      return await decided(app, request, vmId, 'reset-device', app.policy.apply(reset, actorOf(request)), wants(request.query));
    }
  );

  r.post(
    '/v1/vms/:vmId/devices/:bdf/devctl',
    {
      schema: {
        tags: ['devices'],
        summary: `Decide a trapped PCIe Device Control write (${ruleRanges('W')})`,
        description: 'Give the 16-bit `value` the guest wrote, or just `nosnoopEnable`. Write `hardwareValue` to the device only after performing `flush`. `dryRun` evaluates without changing anything.',
        params: DeviceParams,
        querystring: WaitQuery,
        body: DevctlBody,
        response: { 200: DevctlDecision, ...problems }
      }
    },
    async (request) => {
      const vmId = vmIdOf(request.params);
      const bdf = bdfOf(request.params);
      const { write, dryRun } = devctlInput(request.body);
      await inOrder(app, vmId, wants(request.query), { bdf, write });
      const result = await app.policy.apply({ type: 'devctl', vmId, bdf, write, dryRun }, actorOf(request));
      const answer = await decided(app, request, vmId, dryRun ? 'devctl-dry-run' : 'devctl', result, wants(request.query));
      const failClosed = result.failClosed;
      const { decision, hardwareValue, guestValue } = answer;
      if (decision === undefined || hardwareValue === undefined || guestValue === undefined) throw new Error('devctl decision without an outcome');
      return { ...answer, decision, hardwareValue, guestValue, dryRun, ...(failClosed === undefined ? {} : { failClosed }) };
    }
  );
}
