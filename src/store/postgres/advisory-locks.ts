/**
 * The advisory locks that serialise the replicas' changes. Keys are pairs of 32-bit integers:
 * a first key naming what is locked, and a hash of the schema (and VM id), so that stores in
 * different schemas of one database never wait for each other.
 */
import type { WriteScope } from '../state-store.js';

/**
 * First key of the advisory lock on the whole store ("cohe" in ASCII; the second is a hash of
 * the schema): held shared by every change of some VMs, exclusively by a change of the quirk
 * list (which decides again for every VM) and migrations.
 */
const STORE_LOCK = 0x636f6865;
/** First key of a VM's advisory lock (the second is a hash of the schema and the VM id). */
const VM_LOCK = 0x636f6876;
/** Advisory lock key of the round that drops old events (one replica at a time). */
export const TRIM_LOCK = 0x636f6874;

/** The keys of the store's advisory lock (`vmId` undefined) or of a VM's. */
export function advisoryLock(schema: string, vmId?: string): readonly [number, number] {
  return vmId === undefined ? [STORE_LOCK, fnv(schema)] : [VM_LOCK, vmKey(schema, vmId)];
}

/**
 * Statements taking the locks of `scope` for the rest of the transaction: the whole store
 * exclusively (`'all'`), or the store's lock shared and then each VM's, in ascending key order
 * (one order for every replica: no deadlock between them), or none (`'none'`).
 */
export function lockStatements(schema: string, scope: WriteScope | 'none'): string {
  if (scope === 'none') return '';
  if (scope === 'all') return `SELECT pg_advisory_xact_lock(${STORE_LOCK}, ${fnv(schema)});`;
  const keys = [...new Set(scope.map((vm) => vmKey(schema, vm)))].sort((x, y) => x - y);
  return `SELECT pg_advisory_xact_lock_shared(${STORE_LOCK}, ${fnv(schema)});${keys.map((k) => `SELECT pg_advisory_xact_lock(${VM_LOCK}, ${k});`).join('')}`;
}

function vmKey(schema: string, vmId: string): number {
  return fnv(`${schema}\0${vmId}`);
}

/** FNV-1a of a string's UTF-16 code units, as a signed 32-bit integer (an advisory lock key). */
function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}
