/**
 * The decision core: pure, no I/O, time passed in. This file is its only public surface.
 */
export * from './address.js';
export * from './commands/index.js';
export * from './decision.js';
export * from './devctl.js';
export * from './errors.js';
export * from './exposure.js';
export * from './ids.js';
export * from './ordering.js';
export * from './policy.js';
export * from './policy-choices.js';
export * from './queries.js';
export * from './quirks.js';
export * from './rules.js';
export * from './state.js';
export { PinMap } from './pin-map.js';
export { PinJournal, PIN_ATTR, PIN_INSERT, PIN_OP_STRIDE, PIN_RECODE, PIN_REMOVE } from './pin-journal.js';
export * from './snapshot.js';
export { default as defaultQuirksFile } from './default-quirks.json' with { type: 'json' };
export * from './cost-model.js';
