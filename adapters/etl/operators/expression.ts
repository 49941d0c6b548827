// Operators over the expression subset of expr.ts: Expr (a new or replaced column) and Filter (rows where a
// predicate holds). One parsed tree serves both paths: printed as SQL in batch, evaluated in JS online.
import { ValidationError } from "../../../common/errors.js";
import { type Tag, type TaggedColumn, checkTags, resolveSelector } from "../columns.js";
import { type ExprNode, evalExpr, exprColumns, exprToSql, parseExpr } from "../expr.js";
import type { Row } from "../sql.js";
import { type OpJson, type Projection, Op, ProjectionOp, pcol } from "./base.js";

/** A new (or replaced) column from an expression of the subset in expr.ts: the LambdaOp of this world. */
export class Expr extends ProjectionOp {
  readonly kind = "Expr";
  readonly tree: ExprNode;
  readonly tags: Tag[];
  constructor(
    readonly name: string,
    readonly expr: string,
    o: { tags?: string[] } = {},
  ) {
    const tree = parseExpr(expr);
    super([...exprColumns(tree)]);
    if (!name) throw new ValidationError(`Expr "${expr}": needs an output column name`);
    this.tree = tree;
    this.tags = checkTags(o.tags ?? [], `Expr "${name}"`);
  }
  override describe(): string {
    return `Expr ${this.name} = ${this.expr}`;
  }
  project(input: readonly TaggedColumn[]): Projection {
    this.selected(input);
    const prev = input.find((c) => c.name === this.name);
    const tree = this.tree;
    return {
      outputs: [
        {
          name: this.name,
          sql: exprToSql(tree, pcol),
          info: {
            name: this.name,
            tags: [...(prev?.tags ?? []), ...this.tags.filter((t) => !prev?.tags.includes(t))],
            properties: { ...(prev?.properties ?? {}) },
          },
          js: (r) => evalExpr(tree, r),
        },
      ],
    };
  }
  toJSON(): OpJson {
    return { kind: this.kind, name: this.name, expr: this.expr, tags: this.tags };
  }
  static fromJSON(j: OpJson): Expr {
    return new Expr(j.name as string, j.expr as string, { tags: j.tags as string[] });
  }
}

/**
 * Keeps the rows where a predicate (the expression subset of expr.ts) is true; null counts as false.
 * `online: false` marks a training-only filter (e.g. a minimum session length) that transformRows skips, so a
 * request is still answered for rows the training data would not keep.
 */
export class Filter extends Op {
  readonly kind = "Filter";
  readonly tree: ExprNode;
  readonly online: boolean;
  constructor(
    readonly predicate: string,
    o: { online?: boolean } = {},
  ) {
    super();
    this.tree = parseExpr(predicate);
    this.online = o.online ?? true;
  }
  override describe(): string {
    return `Filter ${this.predicate}`;
  }
  columns(input: readonly TaggedColumn[]): TaggedColumn[] {
    resolveSelector([...exprColumns(this.tree)], input, this.describe());
    return [...input];
  }
  sql(prev: string, input: readonly TaggedColumn[]): string {
    this.columns(input);
    return `SELECT p.* FROM ${prev} AS p WHERE ${exprToSql(this.tree, pcol)}`;
  }
  apply(rows: Row[]): Row[] {
    if (!this.online) return rows;
    return rows.filter((r) => evalExpr(this.tree, r) === true);
  }
  toJSON(): OpJson {
    return this.online
      ? { kind: this.kind, predicate: this.predicate }
      : { kind: this.kind, predicate: this.predicate, online: false };
  }
  static fromJSON(j: OpJson): Filter {
    return new Filter(j.predicate as string, { online: j.online !== false });
  }
}
