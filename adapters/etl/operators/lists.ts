// ListSlice: Python-style slices of list columns, with optional padding.
import { ValidationError } from "../../../common/errors.js";
import { type Selector, type TaggedColumn, selectorToJSON, withTags } from "../columns.js";
import { literal } from "../sql.js";
import { type OpJson, type Projection, ProjectionOp, pcol } from "./base.js";

/**
 * Python-style slice of list columns: ListSlice(0, 20) keeps the first 20, ListSlice(-20) the last 20.
 * With pad, lists are padded with padValue to end - start (positive bounds only).
 */
export class ListSlice extends ProjectionOp {
  readonly kind = "ListSlice";
  constructor(
    selector: Selector,
    readonly start: number,
    readonly end?: number,
    readonly o: { pad?: boolean; padValue?: number } = {},
  ) {
    super(selector);
    if (!Number.isInteger(start) || (end !== undefined && end !== null && !Number.isInteger(end)))
      throw new ValidationError(`ListSlice: start and end must be integers, got ${start}, ${end}`);
    if (o.pad && (start < 0 || end === undefined || end < 0 || end <= start))
      throw new ValidationError("ListSlice: pad needs 0 <= start < end");
  }
  override check(input: readonly TaggedColumn[], types: ReadonlyMap<string, string>): void {
    for (const c of this.selected(input)) {
      const t = types.get(c);
      if (t && !t.endsWith("[]")) throw new ValidationError(`ListSlice: column "${c}" has type ${t}; expected a list`);
    }
  }
  project(input: readonly TaggedColumn[]): Projection {
    const { start, end } = this;
    const bound = (b: number, len: string) => (b < 0 ? `greatest(${len} + ${b}, 0)` : `least(${b}, ${len})`);
    const jsBound = (b: number, n: number) => (b < 0 ? Math.max(n + b, 0) : Math.min(b, n));
    const pad = this.o.pad ? (end as number) - start : 0;
    const padValue = this.o.padValue ?? 0;
    return {
      outputs: this.selected(input).map((c) => {
        const len = `len(${pcol(c)})`;
        const s = bound(start, len);
        const e = end === undefined || end === null ? len : bound(end, len);
        let sql = `list_slice(${pcol(c)}, ${s} + 1, ${e})`;
        if (pad) sql = `list_resize(${sql}, ${pad}, ${literal(padValue)})`;
        const info = input.find((x) => x.name === c) as TaggedColumn;
        return {
          name: c,
          sql: `(CASE WHEN ${pcol(c)} IS NULL THEN NULL ELSE ${sql} END)`,
          info: {
            ...withTags(info, ["list"]),
            properties: { ...info.properties, ...(pad ? { valueCount: { min: pad, max: pad } } : {}) },
          },
          js: (r) => {
            const v = r[c];
            if (v === null || v === undefined) return null;
            if (!Array.isArray(v))
              throw new ValidationError(`ListSlice: column "${c}" holds ${JSON.stringify(v)}; expected a list`);
            const n = v.length;
            const out = v.slice(jsBound(start, n), end === undefined || end === null ? n : jsBound(end, n));
            while (out.length < pad) out.push(padValue);
            return out;
          },
        };
      }),
    };
  }
  toJSON(): OpJson {
    return {
      kind: this.kind,
      selector: selectorToJSON(this.selector),
      start: this.start,
      end: this.end ?? null,
      ...this.o,
    };
  }
  static fromJSON(j: OpJson): ListSlice {
    return new ListSlice(j.selector as Selector, j.start as number, (j.end as number | null) ?? undefined, {
      pad: j.pad as boolean,
      padValue: j.padValue as number,
    });
  }
}
