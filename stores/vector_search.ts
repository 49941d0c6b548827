// retrieveOnlineDocuments: the nearest entities of a query vector from a vector field's index, joined with
// features of views keyed by the same entity, as an online response with a `distance` column.
//
// Exclusions, filters and the TTL drop candidates after the index answered, so the search over-fetches
// and asks again for more until `topK` survive or the index has no more.

import { ValidationError, errorMessage } from "../common/errors.js";
import { type Row, evalExpr, exprColumns, parseExpr } from "../common/expr.js";
import { type FeatureViewSpec, type FieldSpec, VECTOR_METRICS, type VectorMetric } from "../registry/types.js";
import { OnlineResponse } from "./online_response.js";
import { EntityKeyCodec, describeValue } from "./online/entity_keys.js";
import type { ResolvedFeatures } from "./references.js";
import type { OnlineReadResult, OnlineStore } from "./types.js";

/** A row of a search answer as a filter sees it: join keys, the requested features and `distance`. */
export type DocumentRow = Record<string, unknown>;

export interface RetrieveOnlineDocumentsRequest {
  /** "view:feature" references: one vector-indexed field (what is searched) and features of its entity */
  features: string[];
  query: Float32Array | Float64Array | number[];
  topK: number;
  /** the field's own metric by default; another one only with `exact` */
  distanceMetric?: VectorMetric;
  /** a predicate the answered rows must satisfy (an expression over the returned features, or a function) */
  filter?: string | ((row: DocumentRow) => boolean);
  /** entity keys never to answer (e.g. items the user has seen): values of the join key, or arrays of them */
  exclude?: unknown[];
  /** brute force over every stored vector instead of the index, for checking */
  exact?: boolean;
}

/** The largest topK a search may ask for unless the store is opened with another. */
export const DEFAULT_MAX_TOP_K = 1000;

export interface SearchContext {
  project: string;
  online: OnlineStore;
  resolved: ResolvedFeatures;
  maxTopK: number;
}

/** A filter expression (the ETL's expression language) as a predicate over the columns a search answers. */
export function compileFilter(expr: string, columns: string[]): (row: DocumentRow) => boolean {
  let node;
  try {
    node = parseExpr(expr);
  } catch (e) {
    throw new ValidationError(`filter ${JSON.stringify(expr)}: ${errorMessage(e)}`, { cause: e });
  }
  for (const c of exprColumns(node))
    if (!columns.includes(c))
      throw new ValidationError(
        `filter ${JSON.stringify(expr)}: no column "${c}" among the answered columns (${columns.join(", ")})`,
      );
  return (row) => {
    const v = evalExpr(node, row as Row);
    return v !== null && Boolean(v);
  };
}

/** The searched field: the one vector-indexed field among the requested features. */
function searchedField(resolved: ResolvedFeatures): { view: FeatureViewSpec; field: FieldSpec; vi: number } {
  const found: Array<{ view: FeatureViewSpec; field: FieldSpec; vi: number }> = [];
  resolved.views.forEach((rv, vi) => {
    for (const f of rv.features) {
      const spec = rv.view.features.find((x) => x.name === f.name);
      if (spec?.vectorIndex) found.push({ view: rv.view, field: spec, vi });
    }
  });
  if (found.length === 1) return found[0];
  const asked = resolved.views.flatMap((rv) => rv.features.map((f) => `${rv.view.name}:${f.name}`)).join(", ");
  if (found.length === 0)
    throw new ValidationError(
      `features: none of ${asked} has a vector index (declare the field with vectorIndex: true, vectorLength and vectorSearchMetric)`,
    );
  throw new ValidationError(
    `features: ${found.map((x) => `${x.view.name}:${x.field.name}`).join(" and ")} both have a vector index; name exactly one to search`,
  );
}

function checkQuery(field: FieldSpec, view: FeatureViewSpec, query: unknown): Float32Array {
  const where = `query (for ${view.name}:${field.name})`;
  if (!Array.isArray(query) && !(query instanceof Float32Array) && !(query instanceof Float64Array))
    throw new ValidationError(
      `${where}: expected a list of ${field.vectorLength} numbers, got ${describeValue(query)}`,
    );
  const q = query as ArrayLike<unknown>;
  if (q.length !== field.vectorLength)
    throw new ValidationError(`${where}: has ${q.length} numbers, expected ${field.vectorLength} (vectorLength)`);
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const x = q[i];
    if (typeof x !== "number" || !Number.isFinite(x))
      throw new ValidationError(
        `${where}: element ${i} is ${typeof x === "number" ? String(x) : describeValue(x)}, expected a finite number`,
      );
    out[i] = x;
  }
  return out;
}

export async function retrieveOnlineDocuments(
  ctx: SearchContext,
  req: RetrieveOnlineDocumentsRequest,
): Promise<OnlineResponse> {
  const { resolved, online } = ctx;
  const { view, field, vi } = searchedField(resolved);
  if (!online.searchVectors) throw new ValidationError(`the ${online.type} online store has no vector search`);
  for (const rv of resolved.views)
    if (!rv.view.online)
      throw new ValidationError(`feature view "${rv.view.name}" has online: false; it has no online values to search`);
  const query = checkQuery(field, view, req.query);
  const topK = req.topK;
  if (typeof topK !== "number" || !Number.isInteger(topK) || topK < 1 || topK > ctx.maxTopK)
    throw new ValidationError(`top_k: expected an integer from 1 to ${ctx.maxTopK}, got ${describeValue(topK)}`);
  const own = field.vectorSearchMetric ?? "cosine";
  const metric = req.distanceMetric ?? own;
  if (!(VECTOR_METRICS as readonly string[]).includes(metric))
    throw new ValidationError(
      `distance_metric: expected one of ${VECTOR_METRICS.join(", ")}, got ${describeValue(metric)}`,
    );
  if (metric !== own && !req.exact)
    throw new ValidationError(
      `distance_metric: the index of ${view.name}:${field.name} is built for ${own}; ask for ${own}, or for ${metric} with exact: true`,
    );
  const joinKeys = view.entityColumns.map((c) => c.name);
  for (const rv of resolved.views)
    if (rv.view.entityColumns.map((c) => c.name).join(",") !== joinKeys.join(","))
      throw new ValidationError(
        `features: feature view "${rv.view.name}" is keyed by ${rv.view.entityColumns.map((c) => c.name).join(", ")}, not by ${joinKeys.join(", ")} as "${view.name}" is`,
      );
  if (
    resolved.views.some((rv) => rv.features.some((f) => f.outputName === "distance") || joinKeys.includes("distance"))
  )
    throw new ValidationError(`features: a feature named "distance" would collide with the search's distance column`);
  const codec = new EntityKeyCodec(view, false);
  const excluded = new Set<string>();
  if (req.exclude !== undefined) {
    if (!Array.isArray(req.exclude)) throw new ValidationError(`exclude: expected a list of entity keys`);
    req.exclude.forEach((e, i) => {
      try {
        excluded.add(codec.key(joinKeys.length === 1 ? [e] : (e as unknown[]), i));
      } catch (err) {
        throw new ValidationError(`exclude[${i}]: ${(err as Error).message}`);
      }
    });
  }
  const filter =
    req.filter === undefined || req.filter === ""
      ? undefined
      : typeof req.filter === "function"
        ? req.filter
        : typeof req.filter === "string"
          ? compileFilter(req.filter, [
              ...joinKeys,
              "distance",
              ...resolved.views.flatMap((rv) => rv.features.map((f) => f.outputName)),
            ])
          : (() => {
              throw new ValidationError(`filter: expected an expression string, got ${describeValue(req.filter)}`);
            })();

  let k = topK + excluded.size + (filter ? topK : 0);
  let exact = req.exact ?? false;
  for (;;) {
    const matches = await online.searchVectors(ctx.project, view, field, query, k, {
      exact,
      metric,
    });
    const keep: number[] = [];
    const candidates: unknown[][] = [];
    matches.entityKeys.forEach((key, i) => {
      if (excluded.size && excluded.has(codec.key(key, i))) return;
      keep.push(i);
      candidates.push(key);
    });
    const answers = await online.read(ctx.project, [
      ...resolved.groups.map((g) => ({ entityKeys: candidates, views: g.views })),
    ]);
    const results = resolved.views.map((rv) => answers[rv.group][rv.slot]);
    const now = Date.now();
    const entityColumns = joinKeys.map((name, j) => ({ name, values: candidates.map((c) => c[j]) }));
    entityColumns.push({ name: "distance", values: keep.map((i) => matches.distances[i]) });
    const all = new OnlineResponse(entityColumns, resolved.views, results, candidates.length, now);
    const rows = filter ? all.toRows() : undefined;
    const picked: number[] = [];
    for (let r = 0; r < candidates.length && picked.length < topK; r++) {
      // an expired or vanished vector is not an answer
      if (all.statusOf(vi, r) !== "PRESENT") continue;
      if (filter && !filter((rows as DocumentRow[])[r])) continue;
      picked.push(r);
    }
    if (picked.length >= topK) return subset(all, entityColumns, results, picked, now);
    if (matches.exhausted) {
      // an HNSW graph may leave a few vectors unreachable: when the index ran out before topK survived,
      // brute force makes sure that no surviving entity is lost
      if (exact) return subset(all, entityColumns, results, picked, now);
      exact = true;
      continue;
    }
    k *= 4;
  }
}

/** The response of rows `picked` of `all`, in that order. */
function subset(
  all: OnlineResponse,
  entityColumns: Array<{ name: string; values: unknown[] }>,
  results: OnlineReadResult[],
  picked: number[],
  now: number,
): OnlineResponse {
  const cols = entityColumns.map((c) => ({ name: c.name, values: picked.map((r) => c.values[r]) }));
  const sub = results.map((res) => {
    const values: Record<string, unknown[]> = {};
    for (const [name, col] of Object.entries(res.values)) values[name] = picked.map((r) => col[r]);
    return { eventTs: Float64Array.from(picked, (r) => res.eventTs[r]), values };
  });
  return new OnlineResponse(cols, all.views, sub, picked.length, now);
}
