/**
 * One contract (src/contract) beside the core: the closed sets the API documents are the core's
 * own constants, so a new rule, mode, cause, verdict, device function or memory type reaches the
 * routes, the typed client, the OpenAPI document and the simulator's traces from the core, not
 * from copies. Checked on the committed document and on the trace schema.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ARCHES, DEVCTL_VERDICTS, DEVICE_FUNCTIONS, FLUSH_CAUSES, FLUSH_METHODS, MEM_TYPES, NOSNOOP_STATES, ON_ENABLE, PLANNED_METHODS, POLICY_MODES, QUIRK_FLAGS, RULE_IDS } from '../../src/domain/index.js';
import { PolicyInput } from '../../src/contract/vm.js';
import { parseTrace } from '../../src/sim/trace.js';

type Schema = { enum?: string[]; properties?: Record<string, Schema>; items?: Schema; $ref?: string; anyOf?: Schema[] };
const doc = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as { components: { schemas: Record<string, Schema> } };
const schemas = doc.components.schemas;

/** The enum of a property of a component (following one $ref, or an item's). */
function enumOf(component: string, ...path: string[]): string[] | undefined {
  let s: Schema | undefined = schemas[component];
  for (const key of path) s = key === '[]' ? s?.items : s?.properties?.[key];
  if (s?.$ref !== undefined) s = schemas[s.$ref.split('/').pop() as string];
  return s?.enum ?? s?.anyOf?.find((a) => a.enum !== undefined)?.enum;
}

describe('the contract takes its closed sets from the core', () => {
  it('in the OpenAPI document', () => {
    expect(enumOf('Reason', 'rule')).toEqual([...RULE_IDS]);
    expect(enumOf('Policy', 'mode')).toEqual([...POLICY_MODES]);
    expect(enumOf('Policy', 'onEnable')).toEqual([...ON_ENABLE]);
    expect(enumOf('Policy', 'flushMethod')).toEqual([...FLUSH_METHODS]);
    expect(enumOf('FlushReceipt', 'method')).toEqual([...PLANNED_METHODS]);
    expect(enumOf('Flush', 'cause')).toEqual([...FLUSH_CAUSES]);
    expect(enumOf('FlushJob', 'cause')).toEqual([...FLUSH_CAUSES]);
    expect(enumOf('FlushJob', 'arch')).toEqual([...ARCHES]);
    expect(enumOf('DevctlDecision', 'decision')).toEqual([...DEVCTL_VERDICTS]);
    expect(enumOf('Device', 'function')).toEqual([...DEVICE_FUNCTIONS]);
    expect(enumOf('Device', 'nosnoop')).toEqual([...NOSNOOP_STATES]);
    expect(enumOf('MemType')).toEqual([...MEM_TYPES]);
    expect(enumOf('Device', 'quirks', '[]')).toEqual([...QUIRK_FLAGS]);
  });

  it("in the simulator's traces: a VM line's policy is the API's VM policy, picked (no mode: every mode is replayed; no wbinvdAbove)", () => {
    const head = '{"t":"vm","vm":"v","arch":"x86_64","policy":';
    const fields = Object.keys(PolicyInput.shape).filter((k) => k !== 'mode' && k !== 'wbinvdAbove');
    expect(fields).toEqual(['onEnable', 'exemptNeedsNoSnoop', 'flushMethod', 'devices']);
    expect(parseTrace(`${head}{"devices":{"0000:01:00.0":{"onEnable":"deny"}}}}`).events[0]).toMatchObject({ policy: { devices: { '0000:01:00.0': { onEnable: 'deny' } } } });
    for (const onEnable of ON_ENABLE) expect(() => parseTrace(`${head}{"onEnable":"${onEnable}"}}`)).not.toThrow();
    for (const flushMethod of FLUSH_METHODS) expect(() => parseTrace(`${head}{"flushMethod":"${flushMethod}"}}`)).not.toThrow();
    expect(() => parseTrace(`${head}{"mode":"trap"}}`)).toThrow();
  });
});
