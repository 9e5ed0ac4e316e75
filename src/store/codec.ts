/**
 * The persisted form of a command: versioned JSON. Commands hold only numbers, strings,
 * booleans, arrays and plain objects, so JSON round-trips them exactly (page numbers stay below
 * 2^53).
 */
import type { Command } from '../domain/index.js';
import type { AuditEntry } from './state-store.js';

export const FORMAT_VERSION = 1;

export function encodeCommand(command: Command): string {
  return JSON.stringify({ v: FORMAT_VERSION, c: command });
}

export function decodeCommand(text: string): Command {
  const parsed = JSON.parse(text) as { v?: unknown; c?: { type?: unknown } };
  if (parsed.v !== FORMAT_VERSION || typeof parsed.c?.type !== 'string') {
    throw new Error(`stored command has an unknown format (version ${String(parsed.v)})`);
  }
  return parsed.c as Command;
}

/** Numbers (job range pairs, pin operations, pinned ranges) as bytes for a BLOB/BYTEA column (a view, no copy). */
export function pairsToBytes(pairs: Float64Array | null): Buffer | null {
  return pairs === null ? null : Buffer.from(pairs.buffer, pairs.byteOffset, pairs.byteLength);
}

/** Back from bytes; copied into an aligned buffer, since a Buffer may sit at any offset of its pool. */
export function pairsFromBytes(bytes: Buffer | Uint8Array | null): Float64Array | null {
  if (bytes === null) return null;
  const out = new Float64Array(bytes.byteLength / 8);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** A stored change as the SQL stores read it back for the audit trail. */
export interface AuditRow {
  seq: number | string;
  at: number | string;
  body: string;
  actor: string | null;
  rules: string | null;
}

export function auditRow(r: AuditRow): AuditEntry {
  return {
    seq: Number(r.seq),
    at: Number(r.at),
    command: decodeCommand(r.body),
    ...(r.actor === null ? {} : { actor: r.actor }),
    ...(r.rules === null ? {} : { rules: JSON.parse(r.rules) as string[] })
  };
}
