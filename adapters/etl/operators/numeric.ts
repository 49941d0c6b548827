// Per-column numeric maps: Normalize (fitted mean and std), LogOp, FillMissing (a constant or a fitted
// statistic) and Clip.
import { ValidationError } from "../../../common/errors.js";
import { type Selector, type TaggedColumn, selectorToJSON, withTags } from "../columns.js";
import { literal, queryRows } from "../sql.js";
import {
  type FitContext,
  type OpJson,
  type Projection,
  ProjectionOp,
  finiteOrNull,
  num,
  pcol,
  requireNumeric,
} from "./base.js";

export class Normalize extends ProjectionOp {
  readonly kind = "Normalize";
  override readonly needsFit = true;
  stats: Record<string, { mean: number; std: number }> = {};

  override fitReads(input: readonly TaggedColumn[]): string[] {
    return this.selected(input);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    requireNumeric(this, this.selected(input), types);
  }
  override async fit(ctx: FitContext, input: readonly TaggedColumn[]): Promise<void> {
    const cols = this.selected(input);
    const sel = cols
      .map((c, i) => `avg(${pcol(c)})::DOUBLE AS m${i}, stddev_samp(${pcol(c)})::DOUBLE AS s${i}`)
      .join(", ");
    const [r] = await queryRows(ctx.conn, `SELECT ${sel} FROM ${ctx.from} AS p`, "Normalize fit");
    cols.forEach((c, i) => {
      const mean = finiteOrNull(r[`m${i}`]);
      const sd = finiteOrNull(r[`s${i}`]);
      if (mean === null) throw new ValidationError(`Normalize: column "${c}" has no non-null values to fit on`);
      // a constant column would divide by zero: scale 1 keeps it centred at 0
      this.stats[c] = { mean, std: sd === null || sd === 0 ? 1 : sd };
    });
    this.fitted = true;
  }
  project(input: readonly TaggedColumn[]): Projection {
    return {
      outputs: this.selected(input).map((c) => {
        const st = this.stats[c];
        if (!st) throw new ValidationError(`Normalize: column "${c}" is not fitted`);
        const info = input.find((x) => x.name === c) as TaggedColumn;
        return {
          name: c,
          sql: `((CAST(${pcol(c)} AS DOUBLE) - ${literal(st.mean)}) / ${literal(st.std)})`,
          info: {
            ...withTags(info, ["continuous"], ["categorical"]),
            properties: { ...info.properties, mean: st.mean, std: st.std },
          },
          js: (r) => {
            const x = num(r[c]);
            return x === null ? null : (x - st.mean) / st.std;
          },
        };
      }),
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), stats: this.stats };
  }
  static fromJSON(j: OpJson): Normalize {
    const op = new Normalize(j.selector as Selector);
    op.stats = (j.stats ?? {}) as Normalize["stats"];
    op.fitted = Object.keys(op.stats).length > 0;
    return op;
  }
}

/** log(1 + x), as NVTabular's LogOp; x <= -1 gives null. */
export class LogOp extends ProjectionOp {
  readonly kind = "LogOp";
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    requireNumeric(this, this.selected(input), types);
  }
  project(input: readonly TaggedColumn[]): Projection {
    return {
      outputs: this.selected(input).map((c) => ({
        name: c,
        sql: `(CASE WHEN ${pcol(c)} > -1 THEN ln(CAST(${pcol(c)} AS DOUBLE) + 1) END)`,
        info: withTags(input.find((x) => x.name === c) as TaggedColumn, ["continuous"]),
        js: (r) => {
          const x = num(r[c]);
          return x === null || !(x > -1) ? null : Math.log(x + 1);
        },
      })),
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector) };
  }
  static fromJSON(j: OpJson): LogOp {
    return new LogOp(j.selector as Selector);
  }
}

export interface FillMissingOptions {
  /** a constant; or */
  value?: number | string | boolean;
  /** a statistic of the fit data */
  strategy?: "mean" | "median";
}

export class FillMissing extends ProjectionOp {
  readonly kind = "FillMissing";
  override readonly needsFit: boolean;
  readonly value: number | string | boolean | undefined;
  readonly strategy: "mean" | "median" | undefined;
  fills: Record<string, number | string | boolean> = {};

  constructor(selector: Selector, o: FillMissingOptions = { value: 0 }) {
    super(selector);
    if ((o.value === undefined) === (o.strategy === undefined))
      throw new ValidationError(`FillMissing: give exactly one of value or strategy ("mean" | "median")`);
    if (o.strategy !== undefined && o.strategy !== "mean" && o.strategy !== "median")
      throw new ValidationError(`FillMissing: strategy must be "mean" or "median", got ${JSON.stringify(o.strategy)}`);
    this.value = o.value;
    this.strategy = o.strategy;
    this.needsFit = o.strategy !== undefined;
  }
  override fitReads(input: readonly TaggedColumn[]): string[] {
    return this.selected(input);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    if (this.strategy || typeof this.value === "number") requireNumeric(this, this.selected(input), types);
  }
  override async fit(ctx: FitContext, input: readonly TaggedColumn[]): Promise<void> {
    const cols = this.selected(input);
    const f = this.strategy === "median" ? "median" : "avg";
    const [r] = await queryRows(
      ctx.conn,
      `SELECT ${cols.map((c, i) => `${f}(${pcol(c)})::DOUBLE AS v${i}`).join(", ")} FROM ${ctx.from} AS p`,
      "FillMissing fit",
    );
    cols.forEach((c, i) => {
      const v = finiteOrNull(r[`v${i}`]);
      if (v === null)
        throw new ValidationError(`FillMissing: column "${c}" has no non-null values to compute the ${this.strategy}`);
      this.fills[c] = v;
    });
    this.fitted = true;
  }
  project(input: readonly TaggedColumn[]): Projection {
    return {
      outputs: this.selected(input).map((c) => {
        const fill = this.strategy ? this.fills[c] : (this.value as number | string | boolean);
        if (fill === undefined) throw new ValidationError(`FillMissing: column "${c}" is not fitted`);
        return {
          name: c,
          sql: `coalesce(${pcol(c)}, ${literal(fill)})`,
          info: input.find((x) => x.name === c) as TaggedColumn,
          js: (r) => {
            const v = r[c];
            return v === null || v === undefined ? fill : v;
          },
        };
      }),
    };
  }
  toJSON(): OpJson {
    return {
      kind: this.kind,
      selector: selectorToJSON(this.selector),
      value: this.value,
      strategy: this.strategy,
      fills: this.fills,
    };
  }
  static fromJSON(j: OpJson): FillMissing {
    const op = new FillMissing(
      j.selector as Selector,
      j.strategy ? { strategy: j.strategy as "mean" } : { value: j.value as number },
    );
    op.fills = (j.fills ?? {}) as FillMissing["fills"];
    op.fitted = !op.needsFit || Object.keys(op.fills).length > 0;
    return op;
  }
}

export class Clip extends ProjectionOp {
  readonly kind = "Clip";
  readonly min: number | null;
  readonly max: number | null;
  constructor(selector: Selector, o: { min?: number; max?: number }) {
    super(selector);
    this.min = o.min ?? null;
    this.max = o.max ?? null;
    if (this.min === null && this.max === null) throw new ValidationError("Clip: give min, max or both");
    if (this.min !== null && this.max !== null && this.min > this.max)
      throw new ValidationError(`Clip: min ${this.min} > max ${this.max}`);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    requireNumeric(this, this.selected(input), types);
  }
  project(input: readonly TaggedColumn[]): Projection {
    const lo = this.min;
    const hi = this.max;
    return {
      outputs: this.selected(input).map((c) => ({
        name: c,
        sql: `(CASE${lo !== null ? ` WHEN ${pcol(c)} < ${literal(lo)} THEN ${literal(lo)}` : ""}${hi !== null ? ` WHEN ${pcol(c)} > ${literal(hi)} THEN ${literal(hi)}` : ""} ELSE ${pcol(c)} END)`,
        info: input.find((x) => x.name === c) as TaggedColumn,
        js: (r) => {
          const v = r[c];
          const x = num(v);
          if (x === null) return v ?? null;
          if (lo !== null && x < lo) return lo;
          if (hi !== null && x > hi) return hi;
          return v ?? null;
        },
      })),
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), min: this.min, max: this.max };
  }
  static fromJSON(j: OpJson): Clip {
    return new Clip(j.selector as Selector, {
      min: (j.min as number | null) ?? undefined,
      max: (j.max as number | null) ?? undefined,
    });
  }
}
