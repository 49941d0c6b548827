// The vectors of a write batch, checked before anything is written: each of a field's declared length
// and finite, or null (the entity then has no vector).

import { ValidationError } from "../../common/errors.js";
import { type FeatureViewSpec, type FieldSpec, vectorFields } from "../../registry/types.js";
import type { OnlineWriteBatch } from "../types.js";
import { describeValue } from "../online/entity_keys.js";

/** One vector field's values in a batch: row r's vector is `vectors[r * dims ...]` when `present[r]`. */
export interface BatchVectors {
  field: FieldSpec;
  dims: number;
  vectors: Float32Array;
  present: Uint8Array;
}

function entityOf(view: FeatureViewSpec, batch: OnlineWriteBatch, row: number): string {
  return view.entityColumns.map((c) => `${c.name}=${describeValue(batch.keys[c.name]?.[row])}`).join(", ");
}

/** The vector columns of `batch` for the view's indexed fields; a bad vector fails the whole batch. */
export function batchVectors(view: FeatureViewSpec, batch: OnlineWriteBatch): BatchVectors[] {
  return vectorFields(view).map((field) => {
    const dims = field.vectorLength ?? 0;
    const n = batch.length;
    const col = batch.features[field.name];
    const vectors = new Float32Array(n * dims);
    const present = new Uint8Array(n);
    for (let r = 0; r < n; r++) {
      const v = col?.[r];
      if (v === null || v === undefined) continue;
      const bad = (why: string) =>
        new ValidationError(
          `feature view "${view.name}", field "${field.name}", entity ${entityOf(view, batch, r)}: ${why}; nothing of the batch was written`,
        );
      if (!Array.isArray(v) && !(v instanceof Float32Array) && !(v instanceof Float64Array))
        throw bad(`expected a list of ${dims} numbers, got ${describeValue(v)}`);
      const arr = v as ArrayLike<unknown>;
      if (arr.length !== dims) throw bad(`the vector has ${arr.length} numbers, expected ${dims} (vectorLength)`);
      const o = r * dims;
      for (let i = 0; i < dims; i++) {
        const x = arr[i];
        if (typeof x !== "number" || !Number.isFinite(x))
          throw bad(
            `element ${i} is ${typeof x === "number" ? String(x) : describeValue(x)}, expected a finite number`,
          );
        vectors[o + i] = x;
      }
      present[r] = 1;
    }
    return { field, dims, vectors, present };
  });
}
