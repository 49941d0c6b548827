// Row operators that keep the columns: Dropna, DedupeConsecutive, and the ORDER BY-equivalent sort the
// online path uses (ties in input order, as the batch path's hidden row ordinal gives).
import { ValidationError } from "../../../common/errors.js";
import { type Selector, type TaggedColumn, resolveSelector, selectorToJSON, valueKey } from "../columns.js";
import type { Row, Value } from "../sql.js";
import { type OpJson, Op, ROW_COL, pcol } from "./base.js";

/** Drops rows with a null in any selected column (default: any column). */
export class Dropna extends Op {
  readonly kind = "Dropna";
  constructor(readonly selector: Selector = "*") {
    super();
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    resolveSelector(this.selector, input, this.describe());
    return [...input];
  }
  sql(prev: string, input: readonly TaggedColumn[]): string {
    const cols = resolveSelector(this.selector, input, this.describe());
    return `SELECT p.* FROM ${prev} AS p${cols.length ? ` WHERE ${cols.map((c) => `${pcol(c)} IS NOT NULL`).join(" AND ")}` : ""}`;
  }
  apply(rows: Row[], input: readonly TaggedColumn[]): Row[] {
    const cols = resolveSelector(this.selector, input, this.describe());
    return rows.filter((r) => cols.every((c) => r[c] !== null && r[c] !== undefined));
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector) };
  }
  static fromJSON(j: OpJson): Dropna {
    return new Dropna(j.selector as Selector);
  }
}

/** Compares two values as DuckDB's ORDER BY does (ascending, NULLS LAST). */
export function compareValues(a: Value | undefined, b: Value | undefined): number {
  const an = a === null || a === undefined;
  const bn = b === null || b === undefined;
  if (an || bn) return an && bn ? 0 : an ? 1 : -1;
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if ((typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint"))
    return a < b ? -1 : a > b ? 1 : 0;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

export function sortRows(rows: Row[], keys: readonly string[]): Row[] {
  // Array.prototype.sort is stable: ties keep input order, as ORDER BY ..., __row does in SQL
  return [...rows].sort((x, y) => {
    for (const k of keys) {
      const c = compareValues(x[k], y[k]);
      if (c !== 0) return c;
    }
    return 0;
  });
}

/**
 * Removes consecutive repeats of the same item within a session (after sorting by session, then time):
 * [1, 2, 4, 1, 2, 2, 3, 3, 3] becomes [1, 2, 4, 1, 2, 3], as notebook 004 does.
 */
export class DedupeConsecutive extends Op {
  readonly kind = "DedupeConsecutive";
  override readonly needsRowOrder = true;
  constructor(readonly o: { session: string; item: string; sortBy: string[] }) {
    super();
    if (!o?.session || !o.item || !Array.isArray(o.sortBy))
      throw new ValidationError("DedupeConsecutive: needs session, item and sortBy (column list)");
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    resolveSelector([this.o.session, this.o.item, ...this.o.sortBy], input, this.describe());
    return [...input];
  }
  sql(prev: string, input: readonly TaggedColumn[]): string {
    this.columns(input);
    const w = `(PARTITION BY ${pcol(this.o.session)} ORDER BY ${[...this.o.sortBy.map(pcol), pcol(ROW_COL)].join(", ")})`;
    return `SELECT p.* FROM ${prev} AS p QUALIFY row_number() OVER ${w} = 1 OR lag(${pcol(this.o.item)}) OVER ${w} IS DISTINCT FROM ${pcol(this.o.item)}`;
  }
  apply(rows: Row[]): Row[] {
    const sorted = sortRows(rows, [this.o.session, ...this.o.sortBy]);
    const out: Row[] = [];
    let prev: Row | null = null;
    for (const r of sorted) {
      const same =
        prev !== null &&
        valueKey(prev[this.o.session]) === valueKey(r[this.o.session]) &&
        valueKey(prev[this.o.item]) === valueKey(r[this.o.item]);
      if (!same) out.push(r);
      prev = r;
    }
    return out;
  }
  toJSON(): OpJson {
    return { kind: this.kind, ...this.o };
  }
  static fromJSON(j: OpJson): DedupeConsecutive {
    return new DedupeConsecutive(j as unknown as { session: string; item: string; sortBy: string[] });
  }
}
