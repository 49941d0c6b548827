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

/**
 * Writes one row per item (its key in the view, `now` as event and created time, its embedding) to the online
 * store and appends the same rows to the view's offline file, so that batch jobs reading the view's source
 * (`fs recommend batch`) find the catalogue; returns the rows written online.
 */
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
  const view = store.getFeatureView(viewName);
  const source = view.source.type === "push" ? view.source.batchSource : view.source;
  const times = new Array<number>(n).fill(now);
  const columns: Record<string, unknown[]> = {
    [joinKey]: Array.from(ids),
    [source.timestampField]: times,
    [field.name]: vectors,
  };
  if (source.createdTimestampColumn) columns[source.createdTimestampColumn] = times;
  const written = await store.writeToOnlineStore(viewName, columns);
  await (await store.offlineStore()).appendRows(source, { length: n, columns });
  return written;
}
