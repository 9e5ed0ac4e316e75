/**
 * The client's names for what goes over the wire, each one a schema of the OpenAPI document
 * (api.ts, generated from openapi/openapi.json): the client carries the contract as the
 * document states it, not the server's zod schemas, so a consumer needs none of the server.
 * Answers are the schemas' output types, requests their input types (`*Input`: defaults may
 * be left out).
 */
import type { components } from './api.js';

type Schemas = components['schemas'];

export type VmState = Schemas['Vm'];
export type DecisionAnswer = Schemas['Decision'];
export type DeviceDecisionAnswer = Schemas['DeviceDecision'];
export type DevctlAnswer = Schemas['DevctlDecision'];
export type MustFlushAnswer = Schemas['FlushQueryAnswer'];
export type PinnedRangeState = Schemas['PinnedRange'];
export type ProblemDetails = Schemas['Problem'];
export type PutVmRequest = Schemas['PutVmInput'];
export type PutDomainRequest = Schemas['PutDomainInput'];
export type PutDeviceRequest = Schemas['PutDeviceInput'];
export type PinRequest = Schemas['PinRequestInput'];
export type UnpinRequest = Schemas['UnpinRequestInput'];
export type FlushQueryRequest = Schemas['FlushQueryInput'];
export type DevctlRequest = Schemas['DevctlWriteInput'];
export type ResetRequest = NonNullable<Schemas['DeviceResetInput']>;
export type AckReport = NonNullable<Schemas['FlushAckInput']>;
export type QuirkListBody = Schemas['QuirkListInput'];
/** One quirk entry as sent (`note` and `source` optional). */
export type QuirkEntry = Schemas['QuirkInput'];
export type QuirkListState = Schemas['QuirkListAnswer'];
export type PutQuirksResult = Schemas['PutQuirksAnswer'];
export type SimulationRequestBody = Schemas['SimulationRequestInput'];
export type SimulationResult = Schemas['Simulation'];
export type FlushJobState = Schemas['FlushJob'];
/** A host-physical range a flush job covers. */
export type FlushJobRange = Schemas['HostRange'];
export type PolicyDefaultsAnswer = Schemas['PolicyDefaults'];
export type AuditRecord = Schemas['AuditEntry'];
export type HealthAnswer = Schemas['Health'];
export type ReadinessAnswer = Schemas['Readiness'];
