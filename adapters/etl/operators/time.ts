// Time operators: calendar features of a time column (TimeFeatures) and notebook 004's day index (DayIndex).
import { ValidationError } from "../../../common/errors.js";
import {
  type ColumnProperties,
  type Selector,
  type Tag,
  type TaggedColumn,
  embeddingDim,
  selectorToJSON,
} from "../columns.js";
import { queryRows, type Value } from "../sql.js";
import {
  type FitContext,
  type OpJson,
  type Output,
  type Projection,
  NUMERIC,
  Op,
  ProjectionOp,
  finiteOrNull,
  num,
  pcol,
} from "./base.js";

type TimeUnit = "s" | "ms" | "timestamp";

function msSql(unit: TimeUnit, c: string): string {
  return unit === "timestamp"
    ? `epoch_ms(CAST(${pcol(c)} AS TIMESTAMP))`
    : unit === "s"
      ? `(CAST(${pcol(c)} AS DOUBLE) * 1000)`
      : `CAST(${pcol(c)} AS DOUBLE)`;
}

/** ms since the epoch of a time value online: a Date, an ISO string (UTC when no zone), or a number in `unit`. */
function msOf(unit: TimeUnit, v: Value | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.getTime();
  if (unit === "timestamp")
    return typeof v === "string" ? Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v.replace(" ", "T")}Z`) : num(v);
  const x = num(v);
  return x === null ? null : unit === "s" ? x * 1000 : x;
}

function checkTimeColumn(op: Op, unit: TimeUnit, c: string, t: string | undefined): void {
  if (!t) return;
  const isTs = /^(TIMESTAMP|DATE)/i.test(t);
  if (unit === "timestamp" ? !isTs : !NUMERIC.test(t))
    throw new ValidationError(
      `${op.describe()}: column "${c}" has type ${t}; expected ${unit === "timestamp" ? 'a TIMESTAMP (or set unit: "s" | "ms")' : `epoch ${unit} as a number`}`,
    );
}

/** notebook 004's day_index: whole UTC days since the first day of the fit data, plus 1. */
export class DayIndex extends ProjectionOp {
  readonly kind = "DayIndex";
  override readonly needsFit = true;
  readonly name: string;
  readonly unit: TimeUnit;
  minDay: number | null = null;
  constructor(selector: Selector, o: { name?: string; unit?: TimeUnit } = {}) {
    super(selector);
    this.name = o.name ?? "day_index";
    this.unit = o.unit ?? "timestamp";
  }
  override fitReads(input: readonly TaggedColumn[]): string[] {
    return this.selected(input);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    const cols = this.selected(input);
    if (cols.length !== 1) throw new ValidationError(`DayIndex: select exactly one time column, got ${cols.length}`);
    checkTimeColumn(this, this.unit, cols[0], types.get(cols[0]));
  }
  override async fit(ctx: FitContext, input: readonly TaggedColumn[]): Promise<void> {
    const [c] = this.selected(input);
    const [r] = await queryRows(
      ctx.conn,
      `SELECT min(floor(${msSql(this.unit, c)} / 86400000))::DOUBLE AS d FROM ${ctx.from} AS p`,
      "DayIndex fit",
    );
    this.minDay = finiteOrNull(r.d);
    if (this.minDay === null) throw new ValidationError(`DayIndex: column "${c}" has no non-null values`);
    this.fitted = true;
  }
  project(input: readonly TaggedColumn[]): Projection {
    const [c] = this.selected(input);
    const min = this.minDay ?? 0;
    return {
      outputs: [
        {
          name: this.name,
          sql: `CAST(floor(${msSql(this.unit, c)} / 86400000) - ${min} + 1 AS INTEGER)`,
          info: {
            name: this.name,
            tags: ["time"],
            properties: { firstDay: new Date(min * 86400000).toISOString().slice(0, 10) },
          },
          js: (r) => {
            const m = msOf(this.unit, r[c]);
            return m === null ? null : Math.floor(m / 86400000) - min + 1;
          },
        },
      ],
    };
  }
  toJSON(): OpJson {
    return {
      kind: this.kind,
      selector: selectorToJSON(this.selector),
      name: this.name,
      unit: this.unit,
      minDay: this.minDay,
    };
  }
  static fromJSON(j: OpJson): DayIndex {
    const op = new DayIndex(j.selector as Selector, { name: j.name as string, unit: j.unit as TimeUnit });
    op.minDay = j.minDay as number | null;
    op.fitted = op.minDay !== null;
    return op;
  }
}

export const TIME_FEATURES = ["weekday", "hour", "weekday_sin", "weekday_cos", "hour_sin", "hour_cos", "day"] as const;
export type TimeFeature = (typeof TIME_FEATURES)[number];

/**
 * Calendar features of a time column, in UTC: weekday (Monday = 0, as pandas), hour, day (days since the
 * epoch), and cyclical sin/cos of weekday (period 7) and hour (period 24). Outputs are named `<col>_<feature>`.
 * The column holds epoch seconds (unit "s"), milliseconds ("ms") or a TIMESTAMP ("timestamp").
 */
export class TimeFeatures extends ProjectionOp {
  readonly kind = "TimeFeatures";
  readonly unit: "s" | "ms" | "timestamp";
  readonly features: TimeFeature[];
  constructor(selector: Selector, o: { unit?: "s" | "ms" | "timestamp"; features?: TimeFeature[] } = {}) {
    super(selector);
    this.unit = o.unit ?? "timestamp";
    if (!["s", "ms", "timestamp"].includes(this.unit))
      throw new ValidationError(`TimeFeatures: unit must be "s", "ms" or "timestamp", got ${JSON.stringify(o.unit)}`);
    this.features = o.features ?? ["weekday", "hour", "weekday_sin", "weekday_cos"];
    for (const f of this.features)
      if (!TIME_FEATURES.includes(f))
        throw new ValidationError(`TimeFeatures: unknown feature "${f}" (expected ${TIME_FEATURES.join(", ")})`);
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    for (const c of this.selected(input)) checkTimeColumn(this, this.unit, c, types.get(c));
  }
  private msSql(c: string): string {
    return msSql(this.unit, c);
  }
  private ms(v: Value | undefined): number | null {
    return msOf(this.unit, v);
  }
  project(input: readonly TaggedColumn[]): Projection {
    const outputs: Output[] = [];
    for (const c of this.selected(input)) {
      const ms = this.msSql(c);
      const day = `floor(${ms} / 86400000)`;
      const weekday = `CAST(((${day} + 3) % 7 + 7) % 7 AS INTEGER)`;
      const hour = `CAST(floor(((${ms} % 86400000) + 86400000) % 86400000 / 3600000) AS INTEGER)`;
      const jsDay = (m: number) => Math.floor(m / 86400000);
      const jsWeekday = (m: number) => (((jsDay(m) + 3) % 7) + 7) % 7;
      const jsHour = (m: number) => Math.floor((((m % 86400000) + 86400000) % 86400000) / 3600000);
      const defs: Record<TimeFeature, { sql: string; js: (m: number) => number; tags: Tag[] }> = {
        weekday: { sql: weekday, js: jsWeekday, tags: ["time", "categorical"] },
        hour: { sql: hour, js: jsHour, tags: ["time", "categorical"] },
        day: { sql: `CAST(${day} AS INTEGER)`, js: jsDay, tags: ["time"] },
        weekday_sin: {
          sql: `sin(2 * pi() * ${weekday} / 7)`,
          js: (m) => Math.sin((2 * Math.PI * jsWeekday(m)) / 7),
          tags: ["time", "continuous"],
        },
        weekday_cos: {
          sql: `cos(2 * pi() * ${weekday} / 7)`,
          js: (m) => Math.cos((2 * Math.PI * jsWeekday(m)) / 7),
          tags: ["time", "continuous"],
        },
        hour_sin: {
          sql: `sin(2 * pi() * ${hour} / 24)`,
          js: (m) => Math.sin((2 * Math.PI * jsHour(m)) / 24),
          tags: ["time", "continuous"],
        },
        hour_cos: {
          sql: `cos(2 * pi() * ${hour} / 24)`,
          js: (m) => Math.cos((2 * Math.PI * jsHour(m)) / 24),
          tags: ["time", "continuous"],
        },
      };
      for (const f of this.features) {
        const d = defs[f];
        const properties: ColumnProperties =
          f === "weekday"
            ? { cardinality: 7, embeddingDim: embeddingDim(7), domain: { min: 0, max: 6 } }
            : f === "hour"
              ? { cardinality: 24, embeddingDim: embeddingDim(24), domain: { min: 0, max: 23 } }
              : {};
        outputs.push({
          name: `${c}_${f}`,
          sql: d.sql,
          info: { name: `${c}_${f}`, tags: d.tags, properties },
          js: (r) => {
            const m = this.ms(r[c]);
            return m === null || Number.isNaN(m) ? null : d.js(m);
          },
        });
      }
    }
    return { outputs };
  }
  toJSON(): OpJson {
    return { kind: this.kind, selector: selectorToJSON(this.selector), unit: this.unit, features: this.features };
  }
  static fromJSON(j: OpJson): TimeFeatures {
    return new TimeFeatures(j.selector as Selector, { unit: j.unit as "s", features: j.features as TimeFeature[] });
  }
}
