/**
 * The wire of the pin and unpin routes, which take batches of 10,000 ranges: bodies the schemas
 * certainly accept unchanged skip the zod walk (plain-check.ts), and the commonest body, a
 * compact batch, is read from its bytes (json-bytes.ts) into page numbers; anything else is
 * parsed and validated as on other routes. Their answers are written as bytes by
 * decision-bytes.ts.
 */
import type { FastifySchemaCompiler } from 'fastify';
import type { PinInput, RangeInput } from '../domain/index.js';
import { IovaRange, PinBody, PinRange, UnpinBody } from '../contract/pin.js';
import { bytes, columnOf, compactRange, cutAt, HOLE, HOLE_VALUE, readHexRanges, startsWith, type CompactRange, type HexRanges } from './json-bytes.js';
import { plainCheck, plainValidatorCompiler } from './plain-check.js';

const PLAIN_PINS = plainCheck(PinBody);
const PLAIN_UNPINS = plainCheck(UnpinBody);

/**
 * True when PinBody (`hpa`) or UnpinBody accepts `body` and answers it unchanged: one range, or
 * `{ranges: [...]}` of at least one. False says nothing about validity: zod decides.
 */
export function isPlainRangeBody(body: unknown, hpa: boolean): boolean {
  return (hpa ? PLAIN_PINS : PLAIN_UNPINS)(body);
}

/** The compact forms read from bytes: a pin range, an unpin range, and the batch around them. */
const PIN_FORM = compactRange(PinRange, 'length');
const UNPIN_FORM = compactRange(IovaRange, 'length');
const [BATCH_HEAD, BATCH_END] = cutAt(JSON.stringify({ ranges: [HOLE] } satisfies Record<keyof (typeof PinBody.options)[1]['shape'], unknown>), HOLE_VALUE, 2).map(bytes) as [Buffer, Buffer];

/** A compact pin (`hpa`) or unpin batch read from its bytes by parseRangeBatchBytes: page numbers in columns. */
export class PlainRangeBatch {
  constructor(
    readonly hpa: boolean,
    readonly read: HexRanges,
    readonly form: CompactRange
  ) {}

  /** The pins, as pinInput gives them for the same ranges. */
  pins(): PinInput[] {
    const iova = columnOf(this.read, this.form, 'iova');
    const hpa = columnOf(this.read, this.form, 'hpa');
    const pages = columnOf(this.read, this.form, 'length');
    const out = new Array<PinInput>(this.read.count);
    for (let i = 0; i < out.length; i++) out[i] = { iova: iova[i] as number, hpa: hpa[i] as number, pages: pages[i] as number, domains: null };
    return out;
  }

  /** The ranges, as rangeInput gives them. */
  ranges(): RangeInput[] {
    const iova = columnOf(this.read, this.form, 'iova');
    const pages = columnOf(this.read, this.form, 'length');
    const out = new Array<RangeInput>(this.read.count);
    for (let i = 0; i < out.length; i++) out[i] = { iova: iova[i] as number, pages: pages[i] as number };
    return out;
  }
}

/**
 * `body` as a PlainRangeBatch when it is `{"ranges":[…]}` written compactly, each range with the
 * required fields of PinRange (`hpa`) or IovaRange in order, as canonical hex (json-bytes.ts);
 * undefined for any other body, which the caller then parses as JSON and zod validates. What it
 * reads is exactly what JSON.parse, the schema and pinInput/rangeInput give.
 */
export function parseRangeBatchBytes(body: Buffer, hpa: boolean): PlainRangeBatch | undefined {
  const form = hpa ? PIN_FORM : UNPIN_FORM;
  if (form === null || !startsWith(body, 0, BATCH_HEAD)) return undefined;
  const read = readHexRanges(body, BATCH_HEAD.length, form, BATCH_END);
  return read === undefined ? undefined : new PlainRangeBatch(hpa, read, form);
}

/** The validator compiler of the pin (`hpa`) and unpin routes: batches read from bytes, plain bodies, params and query skip zod. */
export function rangeBodyValidatorCompiler(hpa: boolean): FastifySchemaCompiler<unknown> {
  return plainValidatorCompiler((data) => data instanceof PlainRangeBatch && data.hpa === hpa);
}
