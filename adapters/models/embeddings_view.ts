// Item embeddings from training written straight into a vector view of the feature store, so that its
// index is built and kept by the store (write-to-online-store), not by hand.

import { ValidationError } from "../../common/errors.js";
import { type FieldSpec, vectorFields } from "../../registry/types.js";
import type { FeatureStore } from "../../stores/feature_store.js";

/** The view's join key and its one vector field of length `dim` (when known); a ValidationError otherwise. */
export function embeddingsTarget(
  store: FeatureStore,
  viewName: string,
  dim?: number,
): { joinKey: string; field: FieldSpec } {
  const view = store.getFeatureView(viewName);
  const fields = vectorFields(view);
  const where = `--embeddings-view ${viewName}`;
  if (view.entityColumns.length !== 1)
    throw new ValidationError(
      `${where}: the view must be keyed by the item id alone, not ${view.entityColumns.map((c) => c.name).join(", ")}`,
    );
  if (fields.length !== 1)
    throw new ValidationError(
      `${where}: the view needs exactly one field with vectorIndex: true (has ${fields.map((f) => f.name).join(", ") || "none"})`,
    );
  if (dim !== undefined && fields[0].vectorLength !== dim)
    throw new ValidationError(
      `${where}: field "${fields[0].name}" has vectorLength ${fields[0].vectorLength}, the model's embeddings have ${dim} numbers`,
    );
  return { joinKey: view.entityColumns[0].name, field: fields[0] };
}

/** Writes one row per item (its key in the view, `now` as event time, its embedding); returns the rows written. */
export async function writeEmbeddingsToView(
  store: FeatureStore,
  viewName: string,
  ids: ArrayLike<unknown>,
  embeddings: Float32Array,
  dim: number,
  now = Date.now(),
): Promise<number> {
  const { joinKey, field } = embeddingsTarget(store, viewName, dim);
  const n = ids.length;
  const vectors = new Array<number[]>(n);
  for (let i = 0; i < n; i++) vectors[i] = Array.from(embeddings.subarray(i * dim, (i + 1) * dim));
  return store.writeToOnlineStore(viewName, {
    [joinKey]: Array.from(ids),
    event_timestamp: new Array<number>(n).fill(now),
    [field.name]: vectors,
  });
}
