// Feature references ("view:feature" or a feature service name) resolved against the registry.

import { NotFoundError, ValidationError } from "../common/errors.js";
import type { FeatureViewSpec, RegistryContents } from "../registry/types.js";
import type { OnlineReadView } from "./types.js";

export interface ResolvedView {
  view: FeatureViewSpec;
  features: Array<{ name: string; outputName: string }>;
  /** where an online read answers this view: `groups[group].views[slot]` */
  group: number;
  slot: number;
}

/** Views keyed by the same join keys (same names, same order): an online read group. */
export interface ResolvedGroup {
  /** the join keys of the group's views, in their `entityColumns` order */
  joinKeys: string[];
  /** what an online read asks of each view */
  views: OnlineReadView[];
}

export interface ResolvedFeatures {
  views: ResolvedView[];
  groups: ResolvedGroup[];
  /** output feature column names, in request order */
  outputNames: string[];
  /** join-key columns the request needs, in order of first use */
  joinKeys: string[];
}

/**
 * Resolve `features` (a list of "view:feature" references, or the name of a feature service) into
 * per-view requests. Without fullFeatureNames, two features of the same name from different views
 * collide: that is an error, as in Feast.
 */
export function resolveFeatures(
  reg: RegistryContents,
  features: string[] | string,
  fullFeatureNames = false,
): ResolvedFeatures {
  const views = new Map(reg.featureViews.map((v) => [v.name, v]));
  let refs: Array<{ view: string; feature: string }>;
  if (typeof features === "string") {
    const service = reg.featureServices.find((s) => s.name === features);
    if (!service) {
      const known = reg.featureServices.map((s) => s.name).join(", ") || "none";
      throw new NotFoundError(
        `feature service "${features}" is not in the registry of project "${reg.project}" (known: ${known}; run "fs apply"?)`,
      );
    }
    refs = service.projections.flatMap((p) => p.features.map((f) => ({ view: p.view, feature: f })));
  } else {
    if (!Array.isArray(features) || features.length === 0)
      throw new ValidationError(
        `features: expected a non-empty list of "view:feature" references or a feature service name`,
      );
    refs = features.map((ref, i) => {
      if (typeof ref !== "string")
        throw new ValidationError(`features[${i}]: expected a "view:feature" string, got ${JSON.stringify(ref)}`);
      const at = ref.indexOf(":");
      if (at <= 0 || at === ref.length - 1)
        throw new ValidationError(`features[${i}]: "${ref}" is not a "view:feature" reference`);
      return { view: ref.slice(0, at), feature: ref.slice(at + 1) };
    });
  }
  const byView = new Map<string, ResolvedView>();
  const groups: ResolvedGroup[] = [];
  const outputNames: string[] = [];
  const seenOut = new Map<string, string>();
  const joinKeys: string[] = [];
  for (const r of refs) {
    const view = views.get(r.view);
    if (!view) {
      throw new NotFoundError(
        `feature view "${r.view}" (in reference "${r.view}:${r.feature}") is not in the registry of project "${reg.project}" (known: ${[...views.keys()].join(", ") || "none"})`,
      );
    }
    if (!view.features.some((f) => f.name === r.feature)) {
      throw new NotFoundError(
        `feature view "${r.view}" has no feature "${r.feature}" (has: ${view.features.map((f) => f.name).join(", ")})`,
      );
    }
    const outputName = fullFeatureNames ? `${r.view}__${r.feature}` : r.feature;
    const prior = seenOut.get(outputName);
    if (prior !== undefined) {
      if (prior === `${r.view}:${r.feature}`) continue; // the same reference twice: keep one
      throw new ValidationError(
        `feature name "${outputName}" is requested from both "${prior}" and "${r.view}:${r.feature}"; set fullFeatureNames (full_feature_names) to get view__feature names`,
      );
    }
    seenOut.set(outputName, `${r.view}:${r.feature}`);
    outputNames.push(outputName);
    let rv = byView.get(view.name);
    if (!rv) {
      const keys = view.entityColumns.map((c) => c.name);
      let group = groups.findIndex((g) => sameList(g.joinKeys, keys));
      if (group < 0) group = groups.push({ joinKeys: keys, views: [] }) - 1;
      rv = { view, features: [], group, slot: groups[group].views.push({ view, features: [] }) - 1 };
      byView.set(view.name, rv);
      for (const k of keys) if (!joinKeys.includes(k)) joinKeys.push(k);
    }
    rv.features.push({ name: r.feature, outputName });
    groups[rv.group].views[rv.slot].features.push(r.feature);
  }
  return { views: [...byView.values()], groups, outputNames, joinKeys };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
