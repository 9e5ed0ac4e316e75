/**
 * The persisted form of a command: versioned JSON. Commands hold only numbers, strings,
 * booleans, arrays and plain objects, so JSON round-trips them exactly (page numbers stay below
 * 2^53).
 */
import type { Command } from '../domain/index.js';

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
