// Operators that change which columns there are, their names, types or tags: Rename, Cast, Select,
// AddMetadata and AddTags.
import { ValidationError } from "../../../common/errors.js";
import {
  type ColumnProperties,
  type Selector,
  type Tag,
  type TaggedColumn,
  checkTags,
  resolveSelector,
  selectorToJSON,
  withTags,
} from "../columns.js";
import type { Row, Value } from "../sql.js";
import { type OpJson, type Projection, type SqlContext, Op, ProjectionOp, ROW_COL, num, pcol } from "./base.js";

export interface RenameOptions {
  postfix?: string;
  prefix?: string;
  /** new name (one selected column only) */
  name?: string;
  /** keep the original column too (a copy under the new name) */
  keep?: boolean;
}

export class Rename extends ProjectionOp {
  readonly kind = "Rename";
  constructor(
    selector: Selector,
    readonly o: RenameOptions,
  ) {
    super(selector);
    if (!o.postfix && !o.prefix && !o.name) throw new ValidationError("Rename: give postfix, prefix or name");
  }
  private newName(c: string, n: number): string {
    if (this.o.name) {
      if (n !== 1)
        throw new ValidationError(`Rename: name "${this.o.name}" needs exactly one selected column, got ${n}`);
      return this.o.name;
    }
    return `${this.o.prefix ?? ""}${c}${this.o.postfix ?? ""}`;
  }
  project(input: readonly TaggedColumn[]): Projection {
    const cols = this.selected(input);
    const outputs = cols.map((c) => {
      const name = this.newName(c, cols.length);
      const info = input.find((x) => x.name === c) as TaggedColumn;
      return {
        name,
        sql: pcol(c),
        info: { ...info, name, tags: [...info.tags], properties: { ...info.properties } },
        js: (r: Row) => r[c] ?? null,
      };
    });
    const names = new Set(outputs.map((o) => o.name));
    return { outputs, drop: this.o.keep ? [] : cols.filter((c) => !names.has(c)) };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), ...this.o };
  }
  static fromJSON(j: OpJson): Rename {
    return new Rename(j.selector as Selector, j as RenameOptions);
  }
}

const CASTS: Record<string, { sql: string; js: (v: Value) => Value }> = {
  int32: { sql: "INTEGER", js: (v) => roundAway(v) },
  int64: { sql: "BIGINT", js: (v) => roundAway(v) },
  float32: { sql: "FLOAT", js: (v) => (num(v) === null ? null : Math.fround(num(v) as number)) },
  float64: { sql: "DOUBLE", js: (v) => num(v) },
  string: { sql: "VARCHAR", js: (v) => (v instanceof Date ? v.toISOString() : String(v)) },
  bool: {
    sql: "BOOLEAN",
    js: (v) => (typeof v === "string" ? ["true", "t", "1", "yes", "y"].includes(v.toLowerCase()) : Boolean(num(v))),
  },
};

/** DuckDB rounds half away from zero when casting a fraction to an integer. */
function roundAway(v: Value): Value {
  if (typeof v === "bigint") return Number(v);
  const x = num(v);
  if (x === null) throw new ValidationError(`Cast: ${JSON.stringify(v)} is not a number`);
  return Math.sign(x) * Math.round(Math.abs(x));
}

/** Cast to int32 | int64 | float32 | float64 | string | bool. (String casts of fractional doubles print differently in JS: "1" vs DuckDB's "1.0".) */
export class Cast extends ProjectionOp {
  readonly kind = "Cast";
  constructor(
    selector: Selector,
    readonly dtype: string,
  ) {
    super(selector);
    if (!CASTS[dtype])
      throw new ValidationError(
        `Cast: dtype must be one of ${Object.keys(CASTS).join(", ")}, got ${JSON.stringify(dtype)}`,
      );
  }
  project(input: readonly TaggedColumn[]): Projection {
    const c0 = CASTS[this.dtype];
    return {
      outputs: this.selected(input).map((c) => ({
        name: c,
        sql: `CAST(${pcol(c)} AS ${c0.sql})`,
        info: input.find((x) => x.name === c) as TaggedColumn,
        js: (r) => {
          const v = r[c];
          return v === null || v === undefined ? null : c0.js(v);
        },
      })),
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), dtype: this.dtype };
  }
  static fromJSON(j: OpJson): Cast {
    return new Cast(j.selector as Selector, j.dtype as string);
  }
}

/** Adds tags (and properties) to columns; data is unchanged. AddTags(sel, tags) = AddMetadata(sel, { tags }). */
export class AddMetadata extends Op {
  readonly kind: string = "AddMetadata";
  readonly tags: Tag[];
  readonly properties: ColumnProperties;
  constructor(
    readonly selector: Selector,
    o: { tags?: string[]; properties?: ColumnProperties },
  ) {
    super();
    this.tags = checkTags(o.tags ?? [], "AddMetadata");
    this.properties = o.properties ?? {};
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    const names = new Set(resolveSelector(this.selector, input, this.describe()));
    return input.map((c) =>
      names.has(c.name) ? { ...withTags(c, this.tags), properties: mergeProperties(c.properties, this.properties) } : c,
    );
  }
  sql(prev: string): string {
    return `SELECT p.* FROM ${prev} AS p`;
  }
  apply(rows: Row[]): Row[] {
    return rows;
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), tags: this.tags, properties: this.properties };
  }
  static fromJSON(j: OpJson): AddMetadata {
    return j.kind === "AddTags"
      ? new AddTags(j.selector as Selector, j.tags as string[])
      : new AddMetadata(j.selector as Selector, {
          tags: j.tags as string[],
          properties: j.properties as ColumnProperties,
        });
  }
}

export class AddTags extends AddMetadata {
  override readonly kind: string = "AddTags";
  constructor(selector: Selector, tags: string[]) {
    super(selector, { tags });
  }
}

/** Keeps only the selected columns, in the selector's order (the workflow's outputs). */
export class Select extends Op {
  readonly kind = "Select";
  constructor(readonly selector: Selector) {
    super();
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    const names = resolveSelector(this.selector, input, this.describe());
    return names.map((n) => input.find((c) => c.name === n) as TaggedColumn);
  }
  sql(prev: string, input: readonly TaggedColumn[], ctx: SqlContext): string {
    const cols = this.columns(input).map((c) => pcol(c.name));
    if (ctx.rowOrder) cols.push(pcol(ROW_COL));
    return `SELECT ${cols.join(", ")} FROM ${prev} AS p`;
  }
  apply(rows: Row[], input: readonly TaggedColumn[]): Row[] {
    const names = this.columns(input).map((c) => c.name);
    return rows.map((r) => {
      const o: Row = {};
      for (const n of names) o[n] = r[n] ?? null;
      return o;
    });
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector) };
  }
  static fromJSON(j: OpJson): Select {
    return new Select(j.selector as Selector);
  }
}

/** Properties over properties; `domain` merges one level down, so naming a table keeps the range categorify set. */
function mergeProperties(base: ColumnProperties, over: ColumnProperties): ColumnProperties {
  const out = { ...base, ...over };
  if (base.domain && over.domain) out.domain = { ...base.domain, ...over.domain };
  return out;
}
