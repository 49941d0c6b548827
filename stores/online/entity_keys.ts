// Entity keys: the string each online store files an entity under.
//
// A key is normalised by each join key's dtype, so that 1, 1n and "1" of an int64 key are the same key.
// Parts are joined by "," and string parts are JSON-quoted, so the form is unambiguous.

import { ValidationError } from "../../common/errors.js";
import { INT_RANGES, type IntType, inIntRange } from "../../common/numbers.js";
import type { Dtype, FeatureViewSpec, FieldSpec } from "../../registry/types.js";

type KeyPart = (v: unknown) => string | undefined;

const INT_RE = /^\s*[+-]?\d+\s*$/;
const FLOAT_RE = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

/** Key parts of an integer type: plain integers within the type's range, whatever form they come in. */
function intKeyPartOf(type: IntType): KeyPart {
  const [lo, hi] = INT_RANGES[type];
  const [loN, hiN] = [Number(lo), Number(hi)];
  const big = (b: bigint): string | undefined => (inIntRange(b, type) ? b.toString() : undefined);
  // digits that always fit the type (and a number): read without a bigint
  const shortDigits = type === "int32" ? 9 : 15;
  return (v: unknown): string | undefined => {
    if (typeof v === "number") {
      if (Number.isSafeInteger(v)) return v >= loN && v <= hiN ? String(v === 0 ? 0 : v) : undefined;
      return Number.isInteger(v) ? big(BigInt(v)) : undefined;
    }
    if (typeof v === "string") {
      if (!INT_RE.test(v)) return undefined;
      const s = v.trim();
      return s.length <= shortDigits ? String(Number(s) || 0) : big(BigInt(s));
    }
    if (typeof v === "bigint") return big(v);
    if (v instanceof Date && !Number.isNaN(v.getTime())) return String(v.getTime());
    return undefined;
  };
}

const int32KeyPart = intKeyPartOf("int32");
const int64KeyPart = intKeyPartOf("int64");

function floatKeyPart(v: unknown): string | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? String(v === 0 ? 0 : v) : undefined;
  if (typeof v === "string" && FLOAT_RE.test(v)) return String(Number(v) || 0);
  if (typeof v === "bigint") return String(Number(v));
  return undefined;
}

function stringKeyPart(v: unknown): string | undefined {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" && Number.isFinite(v)) return JSON.stringify(String(v));
  if (typeof v === "bigint") return JSON.stringify(v.toString());
  return undefined;
}

function boolKeyPart(v: unknown): string | undefined {
  if (v === true || v === "true" || v === 1) return "true";
  if (v === false || v === "false" || v === 0) return "false";
  return undefined;
}

function bytesKeyPart(v: unknown): string | undefined {
  if (v instanceof Uint8Array) return "0x" + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex");
  return undefined;
}

function keyPartFor(dtype: Dtype): KeyPart {
  switch (dtype) {
    case "int32":
      return int32KeyPart;
    case "int64":
    case "unix_timestamp":
      return int64KeyPart;
    case "float32":
    case "float64":
      return floatKeyPart;
    case "string":
      return stringKeyPart;
    case "bool":
      return boolKeyPart;
    case "bytes":
      return bytesKeyPart;
    default:
      throw new ValidationError(`join key dtype "${dtype}" cannot be an entity key (lists are not allowed)`);
  }
}

/** A value as an error message shows it. */
export function describeValue(v: unknown): string {
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Uint8Array) return `bytes[${v.byteLength}]`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function badKey(view: FeatureViewSpec, col: FieldSpec, v: unknown, row: number): ValidationError {
  if (v === null || v === undefined) {
    return new ValidationError(
      `feature view "${view.name}": join key "${col.name}" is missing (${v === null ? "null" : "undefined"}) in entity row ${row}`,
    );
  }
  return new ValidationError(
    `feature view "${view.name}": join key "${col.name}" value ${describeValue(v)} (entity row ${row}) is not a valid ${col.dtype} key`,
  );
}

/**
 * Serializes entity keys of `view`. `withNames` prefixes each part with its join key name
 * ("user_id=1,item_id=\"a\""), as Redis keys shared by views need; without, only the values ("1,\"a\"").
 */
export class EntityKeyCodec {
  private readonly parts: KeyPart[];
  private readonly prefixes: string[];
  /** codecs with equal spellings turn equal join-key values into equal keys */
  readonly spelling: string;

  constructor(
    private readonly view: FeatureViewSpec,
    withNames: boolean,
  ) {
    if (view.entityColumns.length === 0)
      throw new ValidationError(`feature view "${view.name}" has no join keys; the online store needs at least one`);
    this.parts = view.entityColumns.map((c) => keyPartFor(c.dtype));
    this.prefixes = view.entityColumns.map((c, i) => (i > 0 ? "," : "") + (withNames ? `${c.name}=` : ""));
    this.spelling = view.entityColumns.map((c, i) => `${this.prefixes[i]}${c.dtype}`).join("");
  }

  /** One key from join-key values in `view.entityColumns` order. */
  key(values: ArrayLike<unknown>, row = 0): string {
    const cols = this.view.entityColumns;
    if (values.length !== cols.length) {
      throw new ValidationError(
        `feature view "${this.view.name}": entity row ${row} has ${values.length} join key values, expected ${cols.length} (${cols.map((c) => c.name).join(", ")})`,
      );
    }
    let out = "";
    for (let i = 0; i < cols.length; i++) {
      const s = this.parts[i](values[i]);
      if (s === undefined) throw badKey(this.view, cols[i], values[i], row);
      out += this.prefixes[i] + s;
    }
    return out;
  }

  /** Keys of entity rows (join-key values in `view.entityColumns` order), each after `prefix`. */
  keysOfRows(rows: readonly unknown[][], prefix = ""): string[] {
    const out = new Array<string>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = prefix + this.key(rows[i], i);
    return out;
  }

  /** Keys of a column-wise batch (columns named as the join keys). */
  keysOfColumns(columns: Record<string, ArrayLike<unknown>>, length: number): string[] {
    const cols = this.view.entityColumns;
    const arrays = cols.map((c) => {
      const a = columns[c.name];
      if (!a)
        throw new ValidationError(
          `feature view "${this.view.name}": the batch has no join key column "${c.name}" (has ${Object.keys(columns).join(", ") || "none"})`,
        );
      if (a.length < length)
        throw new ValidationError(
          `feature view "${this.view.name}": join key column "${c.name}" has ${a.length} values, expected ${length}`,
        );
      return a;
    });
    const out = new Array<string>(length);
    if (cols.length === 1) {
      const part = this.parts[0];
      const a = arrays[0];
      const p = this.prefixes[0];
      for (let r = 0; r < length; r++) {
        const s = part(a[r]);
        if (s === undefined) throw badKey(this.view, cols[0], a[r], r);
        out[r] = p + s;
      }
      return out;
    }
    for (let r = 0; r < length; r++) {
      let k = "";
      for (let i = 0; i < cols.length; i++) {
        const s = this.parts[i](arrays[i][r]);
        if (s === undefined) throw badKey(this.view, cols[i], arrays[i][r], r);
        k += this.prefixes[i] + s;
      }
      out[r] = k;
    }
    return out;
  }
}
