/**
 * The per-VM event log behind GET /v1/vms/{vmId}/events (src/service/vm-events.ts): resuming
 * after an id held gives exactly the events after it; an id the log no longer holds, or from
 * another start, gives `reset`; the log is bounded by events and by the flush ranges they list.
 */
import { describe, expect, it } from 'vitest';
import { DecisionBuilder, parseVmId } from '../../src/domain/index.js';
import { VmEvents, type VmEvent } from '../../src/service/vm-events.js';

const vmId = parseVmId('vm1');

function decision(ranges: number) {
  const out = new DecisionBuilder();
  for (let i = 0; i < ranges; i++) out.flush(1000 + 2 * i, 1, 'pin');
  return out.build(false);
}

function emit(events: VmEvents, n: number, ranges = 0): void {
  for (let i = 0; i < n; i++) events.emit({ type: 'decision', vmId, revision: i + 1, command: 'pin', actor: 'a', decision: decision(ranges) });
}

function follow(events: VmEvents, lastId?: string): VmEvent[] {
  const seen: VmEvent[] = [];
  events.subscribe(vmId, lastId, (e) => seen.push(e))();
  return seen;
}

describe('VM event log', () => {
  it('resumes after an id it holds with exactly the later events, in order', () => {
    const events = new VmEvents({ epoch: 7 });
    emit(events, 5);
    expect(follow(events, '7.2').map((e) => e.id)).toEqual(['7.3', '7.4', '7.5']);
    expect(follow(events, '7.5')).toEqual([]);
    expect(follow(events)).toEqual([]);
  });

  it('answers reset for an id of another start, or one older than what it holds', () => {
    const events = new VmEvents({ epoch: 7, keep: 3 });
    emit(events, 6);
    expect(follow(events, '6.5').map((e) => e.type)).toEqual(['reset']);
    expect(follow(events, '7.1').map((e) => e.type)).toEqual(['reset']);
    expect(follow(events, '7.3').map((e) => e.id)).toEqual(['7.4', '7.5', '7.6']);
  });

  it('holds at most keepRanges listed flush ranges (always the newest event)', () => {
    const events = new VmEvents({ epoch: 7, keepRanges: 25_000 });
    emit(events, 4, 10_000);
    expect(follow(events, '7.2').map((e) => e.id)).toEqual(['7.3', '7.4']);
    expect(follow(events, '7.1').map((e) => e.type)).toEqual(['reset']);
    emit(events, 1, 40_000);
    expect(follow(events, '7.4').map((e) => e.id)).toEqual(['7.5']);
    expect(follow(events, '7.3').map((e) => e.type)).toEqual(['reset']);
  });

  it('forgets a deleted VM nobody follows; resuming it later is a reset, not a silent gap', () => {
    const events = new VmEvents({ epoch: 7 });
    emit(events, 2);
    events.emit({ type: 'deleted', vmId, revision: 3, actor: 'a', decision: decision(0) });
    expect(follow(events, '7.2').map((e) => e.type)).toEqual(['reset']);
  });
});
