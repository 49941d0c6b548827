// Validators derived from one registry snapshot: which features exist, which entity keys a request must
// carry and of which type, which columns a push or a write must hold. Compiled on first use and cached per
// distinct request shape, so the hot path of a repeated request is one Map lookup and one compiled check.

import type { Ajv, ValidateFunction } from "ajv";
import type { FeatureViewSpec, FieldSpec, RegistryContents } from "../registry/types.js";
import { batchSourceOf } from "../registry/types.js";
import { quoteValue } from "../common/errors.js";
import { StringListMemo } from "../common/list_memo.js";
import { TIMESTAMP_SCHEMA, check, columnSchema, type JsonSchema } from "./schemas.js";

/** A request the registry cannot serve: 404 when a named object does not exist, else 400. */
export interface PlanError {
  status: 400 | 404;
  error: string;
}

export interface OnlinePlan {
  validateEntities: ValidateFunction;
  /** features the request asks (of the list, or of the service) */
  features: number;
}

export interface WritePlan {
  validateDf: ValidateFunction;
}

const MAX_CACHED_PLANS = 1024;

function listNames(names: string[]): string {
  const shown = names.slice(0, 20).join(", ");
  return names.length > 20 ? `${shown}, ... (${names.length} in all)` : shown || "none";
}

export class RegistrySchemas {
  private readonly views = new Map<string, FeatureViewSpec>();
  private readonly services = new Map<string, Set<string>>();
  /**
   * entity checks by feature list and by service (building one checks every reference against the registry)
   * defended by: `npm run bench -- server` 1 row x 250 features @1000 req/s p99
   */
  private readonly featurePlans = new StringListMemo<OnlinePlan | PlanError>(MAX_CACHED_PLANS);
  private readonly servicePlans = new Map<string, OnlinePlan | PlanError>();
  private readonly entityValidators = new Map<string, ValidateFunction>();
  private readonly writePlans = new Map<string, WritePlan | PlanError>();
  private featureRefs: ValidateFunction | undefined;
  private viewNames: ValidateFunction | undefined;

  constructor(
    readonly contents: RegistryContents,
    private readonly ajv: Ajv,
  ) {
    for (const v of contents.featureViews) this.views.set(v.name, v);
    for (const s of contents.featureServices) this.services.set(s.name, new Set(s.projections.map((p) => p.view)));
  }

  /** The entity check for a list of feature references or a feature service (cached per distinct request). */
  online(features: string[] | undefined, service: string | undefined): OnlinePlan | PlanError {
    if (service === undefined) {
      // (validated: a list of strings) looked up without a joined key: see StringListMemo
      let plan = this.featurePlans.get(features!);
      if (!plan) {
        plan = this.buildOnline(features, service);
        this.featurePlans.set(features!, 0, plan);
      }
      return plan;
    }
    let plan = this.servicePlans.get(service);
    if (!plan) {
      plan = this.buildOnline(features, service);
      if (this.servicePlans.size >= MAX_CACHED_PLANS) this.servicePlans.clear();
      this.servicePlans.set(service, plan);
    }
    return plan;
  }

  /** Unknown view names in a materialize request, as an error naming the first; undefined when all exist. */
  checkViewNames(names: unknown): PlanError | undefined {
    if (names === undefined) return undefined;
    this.viewNames ??= this.ajv.compile({
      type: "array",
      items: { enum: [...this.views.keys()], description: "a feature view name" },
    });
    const err = check(this.viewNames, names, "feature_views");
    return err
      ? { status: 404, error: `${err}: no such feature view (known: ${listNames([...this.views.keys()])})` }
      : undefined;
  }

  /** The df check for a push to a push source. */
  push(pushSource: string): WritePlan | PlanError {
    const key = `push\u0000${pushSource}`;
    let plan = this.writePlans.get(key);
    if (!plan) {
      plan = this.buildPush(pushSource);
      this.writePlans.set(key, plan);
    }
    return plan;
  }

  /** The df check for a direct write to a view's online storage. */
  write(viewName: string): WritePlan | PlanError {
    const key = `view\u0000${viewName}`;
    let plan = this.writePlans.get(key);
    if (!plan) {
      const view = this.views.get(viewName);
      plan = view
        ? { validateDf: this.compileDf([view], `feature view "${viewName}"`) }
        : {
            status: 404,
            error: `feature_view_name: no feature view ${quoteValue(viewName)} (known: ${listNames([...this.views.keys()])})`,
          };
      this.writePlans.set(key, plan);
    }
    return plan;
  }

  private buildOnline(features: string[] | undefined, service: string | undefined): OnlinePlan | PlanError {
    let viewNames: Iterable<string>;
    let featureCount: number;
    if (service !== undefined) {
      const svc = this.services.get(service);
      if (!svc)
        return {
          status: 404,
          error: `feature_service: no feature service ${quoteValue(service)} (known: ${listNames([...this.services.keys()])})`,
        };
      viewNames = svc;
      const spec = this.contents.featureServices.find((s) => s.name === service);
      featureCount = spec?.projections.reduce((n, p) => n + p.features.length, 0) ?? 0;
    } else {
      const refs = features!;
      this.featureRefs ??= this.ajv.compile({
        type: "array",
        items: { enum: this.contents.featureViews.flatMap((v) => v.features.map((f) => `${v.name}:${f.name}`)) },
      });
      if (!this.featureRefs(refs)) {
        const e = this.featureRefs.errors?.[0];
        const i = Number((e?.instancePath ?? "/0").split("/")[1]);
        return { status: 404, error: this.unknownRef(i, refs[i]) };
      }
      viewNames = new Set(refs.map((r) => r.slice(0, r.indexOf(":"))));
      featureCount = refs.length;
    }
    const keys = new Map<string, { field: FieldSpec; view: string }>();
    for (const name of viewNames) {
      const view = this.views.get(name);
      if (!view)
        return {
          status: 404,
          error: `feature_service "${service}": refers to feature view "${name}", which is not in the registry`,
        };
      for (const c of view.entityColumns) if (!keys.has(c.name)) keys.set(c.name, { field: c, view: view.name });
    }
    const signature = [...keys.values()]
      .map(({ field }) => `${field.name}:${field.dtype}`)
      .sort()
      .join(",");
    let validateEntities = this.entityValidators.get(signature);
    if (!validateEntities) {
      const properties: Record<string, JsonSchema> = {};
      for (const [name, { field, view }] of keys) {
        properties[name] = {
          ...columnSchema(field.dtype, `entity key "${name}" of feature view "${view}"`, false),
          minItems: 1,
        };
      }
      validateEntities = this.ajv.compile({
        type: "object",
        properties,
        required: [...keys.keys()],
        additionalProperties: { type: "array" },
        sameLength: true,
        description: `the requested features need entity keys ${[...keys.keys()].join(", ")}`,
      });
      this.entityValidators.set(signature, validateEntities);
    }
    return { validateEntities, features: featureCount };
  }

  private unknownRef(i: number, ref: string): string {
    const [viewName, feature] = ref.split(":");
    const view = this.views.get(viewName);
    if (!view)
      return `features[${i}]: ${quoteValue(ref)}: no feature view ${quoteValue(viewName)} (known: ${listNames([...this.views.keys()])})`;
    return `features[${i}]: ${quoteValue(ref)}: feature view "${viewName}" has no feature ${quoteValue(feature)} (has: ${listNames(view.features.map((f) => f.name))})`;
  }

  private buildPush(name: string): WritePlan | PlanError {
    const src = this.contents.dataSources.find((s) => s.name === name && s.type === "push");
    const views = this.contents.featureViews.filter((v) => v.source.type === "push" && v.source.name === name);
    if (!src && views.length === 0) {
      const known = this.contents.dataSources.filter((s) => s.type === "push").map((s) => s.name);
      return {
        status: 404,
        error: `push_source_name: no push source ${quoteValue(name)} (known: ${listNames(known)})`,
      };
    }
    if (views.length === 0)
      return {
        status: 400,
        error: `push_source_name: no feature view reads push source ${quoteValue(name)}, so there is nothing to push to`,
      };
    return { validateDf: this.compileDf(views, `push source "${name}"`) };
  }

  /** Columns of a df written to `views`: join keys and the event timestamp required, features nullable. */
  private compileDf(views: FeatureViewSpec[], what: string): ValidateFunction {
    const properties: Record<string, JsonSchema> = {};
    const required = new Set<string>();
    for (const v of views) {
      for (const c of v.entityColumns) {
        properties[c.name] ??= columnSchema(c.dtype, `entity key "${c.name}"`, false);
        required.add(c.name);
      }
      const src = batchSourceOf(v);
      // the event timestamp goes by the source's name or by "event_timestamp" (the facade takes both)
      for (const ts of new Set([src.timestampField, "event_timestamp"])) {
        properties[ts] ??= {
          type: "array",
          items: TIMESTAMP_SCHEMA,
          description: `the event timestamp column of ${what}`,
        };
      }
      if (src.timestampField === "event_timestamp") required.add("event_timestamp");
      if (src.createdTimestampColumn)
        properties[src.createdTimestampColumn] ??= {
          type: "array",
          items: { ...TIMESTAMP_SCHEMA, type: ["string", "null"] },
        };
      // a column may carry the raw name of the source file (fieldMapping) instead of the feature name
      const rawNameOf = new Map(Object.entries(src.fieldMapping).map(([raw, name]) => [name, raw]));
      for (const f of v.features) {
        const col = columnSchema(f.dtype, `feature "${f.name}" of feature view "${v.name}"`, true);
        properties[f.name] ??= col;
        const raw = rawNameOf.get(f.name);
        if (raw) properties[raw] ??= col;
        else required.add(f.name);
      }
    }
    return this.ajv.compile({
      type: "object",
      properties,
      required: [...required],
      additionalProperties: false,
      sameLength: true,
      description: `${what} takes columns ${Object.keys(properties).join(", ")}`,
    });
  }
}
