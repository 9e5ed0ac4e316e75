/**
 * The flush obligations a change adds or settles, as backpressure and teardown see them.
 */
import { DecisionBuilder, DEVCTL_NOSNOOP_EN, DEVCTL_RESET_DEFAULT, flushPairs, type CoherencyState, type Command, type Decision } from '../domain/index.js';

/**
 * Whether a change may add flush obligations (backpressure may refuse it). Releases and clears
 * never do: an unpin, a teardown, a removal, a DEVCTL write that clears the bit, a device
 * reporting its bit clear where it already is, a reset that restores config.
 */
export function addsObligations(state: CoherencyState, cmd: Command): boolean {
  switch (cmd.type) {
    case 'unpin':
    case 'delete-vm':
    case 'delete-device':
    case 'delete-domain':
      return false;
    case 'devctl': {
      const w = cmd.write;
      return w.value === undefined ? w.nosnoopEnable === true : (w.value & DEVCTL_NOSNOOP_EN) !== 0;
    }
    case 'put-device': {
      const known = state.vms.get(cmd.vmId)?.devices.get(cmd.device.bdf);
      const clear = cmd.device.nosnoop === 'disabled' || cmd.device.nosnoop === 'hardwired-zero';
      return !(clear && known !== undefined && known.domainId === cmd.device.domainId);
    }
    case 'reset-device':
      return cmd.restoresConfig === false;
    case 'pin':
    case 'put-domain':
    case 'put-quirks':
    case 'put-vm':
      return true;
  }
}

/** A teardown's decision whose own flush also covers the VM's outstanding flushes (`pairs`, of `jobs` jobs). */
export function withCovered(decision: Decision, pairs: Float64Array, jobs: number): Decision {
  const out = new DecisionBuilder();
  out.flushAll(flushPairs(decision.flush).slice(), 'teardown');
  out.flushAll(pairs, 'teardown');
  const covered = `the VM's ${jobs} outstanding flush job(s) are settled by this teardown: their ranges are flushed with its own flush, after the unmap and before the pages are released`;
  // Said in the teardown's own F5 reason: one rule, one reason.
  const at = decision.reasons.findIndex((r) => r.rule === 'F5');
  const reasons = at < 0 ? [...decision.reasons, { rule: 'F5' as const, message: covered }] : decision.reasons.map((r, i) => (i === at ? { rule: r.rule, message: `${r.message}; ${covered}` } : r));
  return { ...decision, flush: out.buildFlush(), reasons };
}

/** A dry-run DEVCTL answer while the state cannot be vouched for: deny, keep the bit clear. */
export function failClosedDevctl(write: { value?: number; nosnoopEnable?: boolean }): { decision: Decision; failClosed: 'STORE_UNAVAILABLE' } {
  const value = write.value ?? (write.nosnoopEnable === true ? DEVCTL_RESET_DEFAULT : DEVCTL_RESET_DEFAULT & ~DEVCTL_NOSNOOP_EN);
  const cleared = value & ~DEVCTL_NOSNOOP_EN;
  const out = new DecisionBuilder();
  out.reason('W4', 'fail closed: the state store is unavailable or the state is not loaded, so Enable No Snoop is denied');
  return { decision: out.build(true, { decision: 'deny', hardwareValue: cleared, guestValue: cleared }), failClosed: 'STORE_UNAVAILABLE' };
}
