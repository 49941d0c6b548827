// Groupby: rows to one row per group, sorted within the group, with list, count, first/last and numeric
// aggregates (the session builder of notebook 004).
import { ident } from "../../../common/duckdb.js";
import { ValidationError } from "../../../common/errors.js";
import { type TaggedColumn, resolveSelector, valueKey, withTags } from "../columns.js";
import type { Row, Value } from "../sql.js";
import { type OpJson, type SqlContext, Op, ROW_COL, num, pcol, requireNumeric } from "./base.js";
import { compareValues, sortRows } from "./rows.js";

export const AGGS = ["list", "count", "first", "last", "min", "max", "mean", "sum"] as const;
export type Agg = (typeof AGGS)[number];

export interface GroupbyOptions {
  groupBy: string[];
  sortBy?: string[];
  aggs: Record<string, Agg[]>;
  /** separator between column and aggregation in output names; "-" as in notebook 004 */
  sep?: string;
}

/**
 * Groups rows (e.g. by session or user), sorts each group by sortBy (ties in input order) and aggregates:
 * list (in sorted order, nulls kept), count (non-null), first/last (in sorted order), min, max, mean, sum.
 * Outputs the group columns, then `<col><sep><agg>` for each aggregation.
 */
export class Groupby extends Op {
  readonly kind = "Groupby";
  override readonly needsRowOrder = true;
  readonly sep: string;
  constructor(readonly o: GroupbyOptions) {
    super();
    if (!o?.groupBy?.length) throw new ValidationError("Groupby: needs groupBy columns");
    if (!o.aggs || Object.keys(o.aggs).length === 0)
      throw new ValidationError('Groupby: needs aggs, e.g. { product_id: ["list", "count"] }');
    for (const [c, as] of Object.entries(o.aggs))
      for (const a of as)
        if (!AGGS.includes(a))
          throw new ValidationError(`Groupby: column "${c}": unknown aggregation "${a}" (expected ${AGGS.join(", ")})`);
    this.sep = o.sep ?? "-";
  }
  private outputs(): Array<{ col: string; agg: Agg; name: string }> {
    const out: Array<{ col: string; agg: Agg; name: string }> = [];
    for (const [col, aggs] of Object.entries(this.o.aggs))
      for (const agg of aggs) out.push({ col, agg, name: `${col}${this.sep}${agg}` });
    return out;
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    resolveSelector([...this.o.groupBy, ...(this.o.sortBy ?? []), ...Object.keys(this.o.aggs)], input, this.describe());
    const byName = new Map(input.map((c) => [c.name, c]));
    const cols: TaggedColumn[] = this.o.groupBy.map((g) => byName.get(g) as TaggedColumn);
    for (const { col, agg, name } of this.outputs()) {
      const src = byName.get(col) as TaggedColumn;
      if (agg === "list") cols.push({ name, tags: withTags(src, ["list"]).tags, properties: { ...src.properties } });
      else if (agg === "count") cols.push({ name, tags: ["continuous"], properties: {} });
      else if (agg === "mean" || agg === "sum")
        cols.push({
          name,
          tags: src.tags
            .filter((t) => t !== "categorical")
            .concat(src.tags.includes("continuous") ? [] : ["continuous"]),
          properties: {},
        });
      else cols.push({ name, tags: [...src.tags], properties: { ...src.properties } });
    }
    return cols;
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    for (const { col, agg } of this.outputs()) if (agg === "mean" || agg === "sum") requireNumeric(this, [col], types);
  }
  sql(prev: string, input: readonly TaggedColumn[], ctx: SqlContext): string {
    this.columns(input);
    const keys = [...(this.o.sortBy ?? []).map(pcol), ...(ctx.rowOrder ? [pcol(ROW_COL)] : [])];
    const sortBy = this.o.sortBy ?? [];
    const seqCols = [
      ...new Set(
        this.outputs()
          .filter((o) => ["list", "first", "last"].includes(o.agg))
          .map((o) => o.col),
      ),
    ];
    // a sequence column that is also a sort key is read from its key field (one field less per row to aggregate and sort)
    const valueCols = seqCols.filter((c) => !sortBy.includes(c));
    const field = (c: string) => (sortBy.includes(c) ? `k${sortBy.indexOf(c)}` : `v${valueCols.indexOf(c)}`);
    const inner: string[] = this.o.groupBy.map(pcol);
    // One list of structs led by the sort keys, sorted per group with list_sort (structs compare field by field):
    // every list of a group gets the same order, and this is much faster than ORDER BY inside the aggregate.
    if (seqCols.length) {
      const fields = [...keys.map((k, i) => `k${i} := ${k}`), ...valueCols.map((c) => `${field(c)} := ${pcol(c)}`)];
      inner.push(`list_sort(list(struct_pack(${fields.join(", ")}))) AS __seq`);
    }
    const outer: string[] = this.o.groupBy.map((g) => `g.${ident(g)}`);
    this.outputs().forEach(({ col, agg, name }, i) => {
      const a = `a${i}`;
      switch (agg) {
        case "list":
          outer.push(`list_transform(g.__seq, lambda s: s.${field(col)}) AS ${ident(name)}`);
          return;
        case "first":
          outer.push(`g.__seq[1].${field(col)} AS ${ident(name)}`);
          return;
        case "last":
          outer.push(`g.__seq[-1].${field(col)} AS ${ident(name)}`);
          return;
        case "count":
          inner.push(`count(${pcol(col)}) AS ${a}`);
          break;
        case "min":
        case "max":
        case "sum":
          inner.push(`${agg}(${pcol(col)}) AS ${a}`);
          break;
        case "mean":
          inner.push(`avg(${pcol(col)})::DOUBLE AS ${a}`);
          break;
      }
      outer.push(`g.${a} AS ${ident(name)}`);
    });
    if (ctx.rowOrder) {
      inner.push(`min(${pcol(ROW_COL)}) AS ${ident(ROW_COL)}`);
      outer.push(`g.${ident(ROW_COL)}`);
    }
    const pass =
      ctx.groupPass && ctx.groupPass.n > 1 && !ctx.groupPass.atSource
        ? ` WHERE hash(${this.o.groupBy.map(pcol).join(", ")}) % ${ctx.groupPass.n} = ${ctx.groupPass.i}`
        : "";
    return `SELECT ${outer.join(", ")} FROM (SELECT ${inner.join(", ")} FROM ${prev} AS p${pass} GROUP BY ${this.o.groupBy.map(pcol).join(", ")}) AS g`;
  }
  apply(rows: Row[], input: readonly TaggedColumn[]): Row[] {
    this.columns(input);
    const groups = new Map<string, Row[]>();
    for (const r of rows) {
      const k = this.o.groupBy.map((g) => valueKey(r[g]) ?? "null").join("\u0001");
      const g = groups.get(k);
      if (g) g.push(r);
      else groups.set(k, [r]);
    }
    const out: Row[] = [];
    for (const g of groups.values()) {
      const sorted = sortRows(g, this.o.sortBy ?? []);
      const o: Row = {};
      for (const c of this.o.groupBy) o[c] = sorted[0][c] ?? null;
      for (const { col, agg, name } of this.outputs()) {
        const vals = sorted.map((r) => r[col] ?? null);
        const present = vals.filter((v) => v !== null) as Value[];
        switch (agg) {
          case "list":
            o[name] = vals;
            break;
          case "count":
            o[name] = present.length;
            break;
          case "first":
            o[name] = vals[0];
            break;
          case "last":
            o[name] = vals[vals.length - 1];
            break;
          case "min":
          case "max":
            o[name] = present.length
              ? present.reduce((a, b) => (compareValues(a, b) * (agg === "min" ? 1 : -1) <= 0 ? a : b))
              : null;
            break;
          case "sum":
            o[name] = present.length ? present.reduce((a: number, b) => a + (num(b) as number), 0) : null;
            break;
          case "mean":
            o[name] = present.length
              ? present.reduce((a: number, b) => a + (num(b) as number), 0) / present.length
              : null;
            break;
        }
      }
      out.push(o);
    }
    return out;
  }
  toJSON(): OpJson {
    return { kind: this.kind, ...this.o, sep: this.sep };
  }
  static fromJSON(j: OpJson): Groupby {
    return new Groupby(j as unknown as GroupbyOptions);
  }
}
