// The one registry of operator kinds: the "kind" a saved workflow.json names for each operator, and the
// factory that rebuilds it. A new operator is added here or saved workflows cannot load it.
import { ValidationError } from "../../../common/errors.js";
import type { Op, OpJson } from "./base.js";
import { Categorify } from "./categorify.js";
import { Expr, Filter } from "./expression.js";
import { JoinGroupby, TargetEncoding } from "./group_stats.js";
import { Groupby } from "./groupby.js";
import { ListSlice } from "./lists.js";
import { Clip, FillMissing, LogOp, Normalize } from "./numeric.js";
import { AddMetadata, Cast, Rename, Select } from "./reshape.js";
import { DedupeConsecutive, Dropna } from "./rows.js";
import { DayIndex, TimeFeatures } from "./time.js";

export const OP_KINDS: Record<string, (j: OpJson) => Op> = {
  Categorify: Categorify.fromJSON,
  Normalize: Normalize.fromJSON,
  LogOp: LogOp.fromJSON,
  FillMissing: FillMissing.fromJSON,
  Clip: Clip.fromJSON,
  Rename: Rename.fromJSON,
  Cast: Cast.fromJSON,
  Expr: Expr.fromJSON,
  TimeFeatures: TimeFeatures.fromJSON,
  DayIndex: DayIndex.fromJSON,
  JoinGroupby: JoinGroupby.fromJSON,
  TargetEncoding: TargetEncoding.fromJSON,
  ListSlice: ListSlice.fromJSON,
  AddMetadata: AddMetadata.fromJSON,
  AddTags: AddMetadata.fromJSON,
  Select: Select.fromJSON,
  Filter: Filter.fromJSON,
  Dropna: Dropna.fromJSON,
  DedupeConsecutive: DedupeConsecutive.fromJSON,
  Groupby: Groupby.fromJSON,
};

export function opFromJSON(j: OpJson): Op {
  const f = OP_KINDS[j?.kind];
  if (!f)
    throw new ValidationError(
      `workflow: unknown operator kind ${JSON.stringify(j?.kind)} (known: ${Object.keys(OP_KINDS).join(", ")})`,
    );
  const op = f(j);
  if (!op.needsFit) op.fitted = true;
  return op;
}
