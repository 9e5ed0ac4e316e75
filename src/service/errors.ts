/**
 * The errors the service answers with besides the core's: the HTTP layer maps them to problems
 * and imports them from here, never from the layers behind the service.
 */
export { FlushAckTimeoutError, OverloadedError } from '../jobs/flush-jobs.js';
export { NotReadyError, StoreUnavailableError } from '../store/state-store.js';
