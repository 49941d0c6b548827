// The point-in-time join as SQL: per view a range join of entity rows to source rows on the join keys,
// event time <= the entity row's time (and >= time - ttl when ttl > 0), keeping the latest row per entity
// row (ties to the latest created time). ASOF joins cannot carry the ttl bound nor the created tie-break.
import { ident } from "../../common/duckdb.js";

export interface PitView {
  /** the source relation (read_parquet(...) with row ids) */
  relation: string;
  /** SQL naming a source row uniquely (see rowIdExpr) */
  rowId: string;
  /** entity df column -> raw source column, per join key */
  keys: Array<{ entityColumn: string; sourceColumn: string }>;
  tsExpr: string;
  createdExpr: string | null;
  /** raw source column -> output column name */
  features: Array<{ sourceColumn: string; outputName: string }>;
  ttlSeconds: number;
}

export interface PitQuery {
  entityTable: string;
  /** entity df columns, in order */
  entityColumns: string[];
  timestampColumn: string;
  views: PitView[];
  filterByCreatedTimestamp: boolean;
}

// Two steps per view: a narrow join (keys, times, source row id) picks the winning source row per entity
// row, then the features of the winners are fetched by row id. Carrying only narrow columns through the
// range join and the window costs less than dragging every feature along.
function viewCte(q: PitQuery, v: PitView, i: number): string {
  const ts = `e.${ident(q.timestampColumn)}`;
  const narrow = [
    ...v.keys.map((k, j) => `${ident(k.sourceColumn)} AS __k${j}`),
    `${v.tsExpr} AS __ts`,
    ...(v.createdExpr ? [`${v.createdExpr} AS __cr`] : []),
    `${v.rowId} AS __rid`,
  ];
  const on = [...v.keys.map((k, j) => `e.${ident(k.entityColumn)} = f.__k${j}`), `f.__ts <= ${ts}`];
  if (v.ttlSeconds > 0) on.push(`f.__ts >= ${ts} - to_microseconds(${Math.round(v.ttlSeconds * 1e6)}::BIGINT)`);
  if (q.filterByCreatedTimestamp && v.createdExpr) on.push(`f.__cr <= ${ts}`);
  const order = v.createdExpr ? "f.__ts DESC, f.__cr DESC NULLS LAST" : "f.__ts DESC";
  const wide = [`${v.rowId} AS __rid`, ...v.features.map((f, j) => `${ident(f.sourceColumn)} AS __f${j}`)];
  const out = v.features.map((f, j) => `g.__f${j} AS ${ident(f.outputName)}`);
  return `__v${i} AS (
  SELECT w.__row, ${out.join(", ")}
  FROM (
    SELECT e.rowid AS __row, f.__rid
    FROM ${ident(q.entityTable)} e
    JOIN (SELECT ${narrow.join(", ")} FROM ${v.relation}) f
      ON ${on.join(" AND ")}
    QUALIFY row_number() OVER (PARTITION BY e.rowid ORDER BY ${order}) = 1
  ) w
  JOIN (SELECT ${wide.join(", ")} FROM ${v.relation}) g ON g.__rid = w.__rid
)`;
}

/** One SELECT giving every entity row once, in input order, with each view's features (null when none). */
export function pitSql(q: PitQuery): string {
  const ctes = q.views.map((v, i) => viewCte(q, v, i));
  const cols = [
    ...q.entityColumns.map((c) => `e.${ident(c)}`),
    ...q.views.flatMap((v, i) => v.features.map((f) => `__v${i}.${ident(f.outputName)}`)),
  ];
  const joins = q.views.map((_, i) => `LEFT JOIN __v${i} ON __v${i}.__row = e.rowid`);
  return `${ctes.length > 0 ? `WITH ${ctes.join(",\n")}` : ""}
SELECT ${cols.join(", ")}
FROM ${ident(q.entityTable)} e
${joins.join("\n")}
ORDER BY e.rowid`;
}
