/**
 * The decision rules of SPEC section 3, in one table. Every reason in every answer names one of
 * these ids; the code that applies a rule says so with the same id.
 */
export const RULES = {
  C1: 'coherent domain: never flush for it; NOSNOOP_EN writes are allowed',
  F1: 'pin: flush before mapping if any domain the range maps into is exposed; set flushOnUnpin',
  F2: 'exposure transition: flush pinned ranges of the newly exposed domain not yet flagged (replay)',
  F3: 'unpin: flush before release iff flushOnUnpin; the flag is sticky while pinned',
  F4: 'mmio ranges mapped UC, UC- or WC on the host are never flushed',
  F5: 'teardown or removal of the last domain: unpin semantics for every pinned range',
  W1: 'NOSNOOP_EN=1 on a device in a coherent domain: allow',
  W2: 'VF: ignore the write (the bit is reserved; the PF governs)',
  W3: 'virtualize-zero: deny (hardware and guest read 0) unless exempt needs-nosnoop',
  W4: "trap: apply the policy's onEnable; allow triggers F2 before the bit reaches hardware",
  W5: 'pessimistic: allow (flushing already assumes no-snoop)',
  W6: 'clearing the bit is always allowed; flushOnUnpin flags stay',
  W7: 'ignores-nosnoop-enable device: the bit is meaningless; allow and report the quirk',
  W8: "per-device override in the VM's policy: decides the device's trapped enables ahead of W3 and W4",
  R1: 'device reset: NOSNOOP_EN returns to 1 unless hardwired to zero',
  K1: 'KVM must treat the VM as having non-coherent DMA when any device sits in a non-coherent domain'
} as const;

export type RuleId = keyof typeof RULES;

export const RULE_IDS = Object.keys(RULES) as RuleId[];

/**
 * The rule ids as people write them, runs of one letter shortened: "C1, F1-F5, W1-W8, R1, K1",
 * or only the rules of one letter ("W1-W8"). Documentation takes them from here, so a new rule
 * shows wherever the rules are listed.
 */
export function ruleRanges(letter?: string): string {
  const runs: string[][] = [];
  for (const id of RULE_IDS) {
    if (letter !== undefined && !id.startsWith(letter)) continue;
    const last = runs.at(-1);
    if (last !== undefined && (last[0] as string)[0] === id[0]) last.push(id);
    else runs.push([id]);
  }
  return runs.map((run) => (run.length === 1 ? run[0] : `${run[0] as string}-${run.at(-1) as string}`)).join(', ');
}
