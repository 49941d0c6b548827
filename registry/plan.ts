// Plan: compile a repo's definitions to specs, check them against each other, and diff them with
// what the registry holds. Apply commits exactly the plan.

import { ValidationError } from "../common/errors.js";
import { type Definition, isKind } from "./definitions.js";
import type { LoadedDefinition } from "./loader.js";
import { KIND_FIELDS, type ObjectKind, type RegistryChange, type RegistryObjects, stampOf } from "./registry.js";
import { type DataSourceSpec, type FeatureViewSpec, vectorFields } from "./types.js";

export interface DesiredState extends RegistryObjects {
  /** where each object was defined ("kind:name" -> repo-relative file), for error messages */
  origin: Map<string, string>;
}

/**
 * Turn loaded definitions into specs and check references and names; errors name file and object. Source
 * and pipeline model paths stay as written: they are resolved against the repo folder where they are used.
 */
export function compileDefinitions(loaded: LoadedDefinition[]): DesiredState {
  const state: DesiredState = {
    entities: [],
    dataSources: [],
    featureViews: [],
    featureServices: [],
    pipelines: [],
    origin: new Map(),
  };
  const byName = new Map<string, { def: Definition; file: string }>();
  const claim = (kind: ObjectKind, name: string, def: Definition, file: string) => {
    const key = `${kind}:${name}`;
    const prior = byName.get(key);
    if (prior && prior.def !== def) {
      throw new ValidationError(
        `${file}: duplicate ${kind.replace("_", " ")} name "${name}" (also defined in ${prior.file})`,
      );
    }
    if (!prior) {
      byName.set(key, { def, file });
      state.origin.set(key, file);
      return true;
    }
    return false;
  };

  const sources = new Map<string, { spec: DataSourceSpec; file: string }>();
  const addSource = (spec: DataSourceSpec, file: string) => {
    const prior = sources.get(spec.name);
    if (prior && JSON.stringify(prior.spec) !== JSON.stringify(spec)) {
      throw new ValidationError(
        `${file}: duplicate data source name "${spec.name}" with a different definition (also defined in ${prior.file})`,
      );
    }
    if (!prior) {
      sources.set(spec.name, { spec, file });
      state.origin.set(`data_source:${spec.name}`, file);
      state.dataSources.push(spec);
    }
  };

  for (const { definition: d, file } of loaded) {
    if (isKind(d, "entity")) {
      if (claim("entity", d.name, d, file)) state.entities.push(d.toSpec());
    } else if (isKind(d, "file_source") || isKind(d, "push_source")) {
      addSource(d.toSpec(), file);
    }
  }
  const entityNames = new Set(state.entities.map((e) => e.name));
  for (const { definition: d, file } of loaded) {
    if (!isKind(d, "feature_view")) continue;
    if (!claim("feature_view", d.name, d, file)) continue;
    for (const e of d.entities) {
      if (!entityNames.has(e.name)) {
        throw new ValidationError(
          `${file}: feature view "${d.name}" uses entity "${e.name}", which no file of the repo exports (export it, e.g. \`export const ${e.name} = new Entity(...)\`)`,
        );
      }
      const registered = state.entities.find((x) => x.name === e.name);
      if (registered && JSON.stringify(registered) !== JSON.stringify(e.toSpec())) {
        throw new ValidationError(
          `${file}: feature view "${d.name}" uses an entity "${e.name}" that differs from the exported one in ${state.origin.get(`entity:${e.name}`)}`,
        );
      }
    }
    const spec = d.toSpec();
    addSource(spec.source, file);
    state.featureViews.push(spec);
  }
  const views = new Map(state.featureViews.map((v) => [v.name, v]));
  for (const { definition: d, file } of loaded) {
    if (!isKind(d, "feature_service")) continue;
    if (!claim("feature_service", d.name, d, file)) continue;
    const spec = d.toSpec();
    for (const p of spec.projections) {
      const v = views.get(p.view);
      if (!v)
        throw new ValidationError(
          `${file}: feature service "${d.name}" uses feature view "${p.view}", which no file of the repo exports`,
        );
      for (const f of p.features) {
        if (!v.features.some((x) => x.name === f))
          throw new ValidationError(
            `${file}: feature service "${d.name}": feature view "${p.view}" has no feature "${f}"`,
          );
      }
    }
    state.featureServices.push(spec);
  }
  for (const { definition: d, file } of loaded) {
    if (!isKind(d, "pipeline")) continue;
    if (!claim("pipeline", d.name, d, file)) continue;
    if (!entityNames.has(d.entity.name))
      throw new ValidationError(
        `${file}: pipeline "${d.name}" uses entity "${d.entity.name}", which no file of the repo exports`,
      );
    state.pipelines.push(d.toSpec());
  }
  // Names that collide across kinds make references ambiguous ("name" may be a service or a view).
  for (const s of state.featureServices) {
    if (views.has(s.name))
      throw new ValidationError(
        `${state.origin.get(`feature_service:${s.name}`)}: feature service "${s.name}" has the name of a feature view; pick another`,
      );
  }
  return state;
}

export interface PlanEntry {
  kind: ObjectKind;
  name: string;
  action: "create" | "update" | "delete";
}

export interface Plan {
  entries: PlanEntry[];
  change: RegistryChange;
  /** views whose online storage must exist after apply (online views, new or kept) */
  onlineKeep: FeatureViewSpec[];
  /** views whose online storage goes: deleted, turned offline, or with other join keys */
  onlineDrop: FeatureViewSpec[];
  /** vector index changes, one line each ("create vector index item_embeddings:embedding (64-d, cosine)") */
  vectorIndexes: string[];
}

/** What happens to the vector indexes of a view that goes from `old` to `now` (either may be absent). */
function vectorIndexChanges(old: FeatureViewSpec | undefined, now: FeatureViewSpec | undefined): string[] {
  const describe = (f: { vectorLength?: number; vectorSearchMetric?: string }) =>
    `${f.vectorLength}-d, ${f.vectorSearchMetric}`;
  const before = new Map(old?.online ? vectorFields(old).map((f) => [f.name, f]) : []);
  const after = new Map(now?.online ? vectorFields(now).map((f) => [f.name, f]) : []);
  const name = (now ?? old)?.name;
  const out: string[] = [];
  const rekeyed = old && now && JSON.stringify(old.entityColumns) !== JSON.stringify(now.entityColumns);
  for (const [f, spec] of after) {
    const prior = before.get(f);
    if (!prior) out.push(`create vector index ${name}:${f} (${describe(spec)})`);
    else if (rekeyed || describe(prior) !== describe(spec))
      out.push(
        `rebuild vector index ${name}:${f} (${describe(prior)} -> ${describe(spec)}${rekeyed ? ", new join keys" : ""})`,
      );
  }
  for (const f of before.keys()) if (!after.has(f)) out.push(`drop vector index ${name}:${f}`);
  return out;
}

export function diff(current: RegistryObjects, desired: RegistryObjects): Plan {
  const entries: PlanEntry[] = [];
  const change: RegistryChange = { upsert: [], remove: [], base: stampOf(current) };
  for (const [kind, field] of KIND_FIELDS) {
    const have = new Map((current[field] as Array<{ name: string }>).map((o) => [o.name, o]));
    const want = new Map((desired[field] as Array<{ name: string }>).map((o) => [o.name, o]));
    for (const [name, spec] of want) {
      const prior = have.get(name);
      if (!prior) entries.push({ kind, name, action: "create" });
      else if (JSON.stringify(prior) !== JSON.stringify(spec)) entries.push({ kind, name, action: "update" });
      else continue;
      change.upsert.push({ kind, name, spec });
    }
    for (const name of have.keys()) {
      if (!want.has(name)) {
        entries.push({ kind, name, action: "delete" });
        change.remove.push({ kind, name });
      }
    }
  }
  const onlineKeep = desired.featureViews.filter((v) => v.online);
  const onlineDrop: FeatureViewSpec[] = [];
  for (const old of current.featureViews) {
    const now = desired.featureViews.find((v) => v.name === old.name);
    if (!now || !now.online || JSON.stringify(now.entityColumns) !== JSON.stringify(old.entityColumns))
      onlineDrop.push(old);
  }
  const vectorIndexes: string[] = [];
  const names = new Set([...current.featureViews, ...desired.featureViews].map((v) => v.name));
  for (const n of names)
    vectorIndexes.push(
      ...vectorIndexChanges(
        current.featureViews.find((v) => v.name === n),
        desired.featureViews.find((v) => v.name === n),
      ),
    );
  return { entries, change, onlineKeep, onlineDrop, vectorIndexes };
}

export function formatPlan(plan: Plan): string {
  if (plan.entries.length === 0) return "No changes: the registry matches the repo.";
  const sym = { create: "+", update: "~", delete: "-" } as const;
  const lines = plan.entries.map(
    (e) => `  ${sym[e.action]} ${e.action.padEnd(6)} ${e.kind.replace("_", " ")} ${e.name}`,
  );
  for (const v of plan.vectorIndexes) lines.push(`    ${v}`);
  const count = (a: PlanEntry["action"]) => plan.entries.filter((e) => e.action === a).length;
  return `${lines.join("\n")}\n${count("create")} to create, ${count("update")} to update, ${count("delete")} to delete.`;
}
