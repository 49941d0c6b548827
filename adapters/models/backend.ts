// Picks the fastest TensorFlow.js backend present at run time and closes the gaps of the wasm backend.
// Native backends (tfjs-node-gpu, tfjs-node) are optional: loaded by a guarded dynamic import, never required.
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { createRequire } from "node:module";
import { dirname } from "node:path";

export type BackendName = "tensorflow" | "wasm" | "cpu";
export type BackendPreference = "auto" | BackendName;

export { tf };

let initialised: BackendName | null = null;

/** The dist folder of @tensorflow/tfjs-backend-wasm, where its .wasm binaries live (so they load offline). */
export function wasmDistDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("@tensorflow/tfjs-backend-wasm")) + "/";
}

async function tryImport(name: string): Promise<boolean> {
  try {
    // The name is a variable so bundlers and tsc do not require the optional package to exist.
    await import(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * Select and initialise a backend: "auto" tries tfjs-node-gpu, tfjs-node, wasm, then cpu, and logs the choice
 * (set `log` to a no-op to silence it). Idempotent per process unless a different explicit backend is asked for.
 */
export async function initBackend(
  prefer: BackendPreference = "auto",
  log: (msg: string) => void = (m) => process.stderr.write(m + "\n"),
): Promise<BackendName> {
  if (initialised && (prefer === "auto" || prefer === initialised)) return initialised;
  registerGatherGradient();
  registerMatMulGradient();
  const order: BackendName[] = prefer === "auto" ? ["tensorflow", "wasm", "cpu"] : [prefer];
  for (const name of order) {
    if (name === "tensorflow") {
      // Either package registers the "tensorflow" backend as a side effect of its import.
      const found = (await tryImport("@tensorflow/tfjs-node-gpu")) || (await tryImport("@tensorflow/tfjs-node"));
      if (!found) {
        if (prefer === "tensorflow")
          throw new Error("backend 'tensorflow' needs @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu installed");
        continue;
      }
    }
    if (name === "wasm") setWasmPaths(wasmDistDir());
    let ok = false;
    try {
      ok = await tf.setBackend(name);
    } catch {
      ok = false;
    }
    if (ok) {
      await tf.ready();
      initialised = name;
      log(`tfjs backend: ${name}`);
      return name;
    }
    if (prefer !== "auto") throw new Error(`tfjs backend '${name}' could not be initialised`);
  }
  throw new Error("no TensorFlow.js backend could be initialised (tried tensorflow, wasm, cpu)");
}

let gatherGradRegistered = false;

/** matMul with transposes done explicitly: wasm's transposed matMul path is 4-40x slower than transpose + matMul. */
export function matMulFast(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  const t = (x: tf.Tensor) =>
    x.rank === 2
      ? tf.transpose(x)
      : tf.transpose(x, [...Array.from({ length: x.rank - 2 }, (_, i) => i), x.rank - 1, x.rank - 2]);
  return tf.matMul(transposeA ? t(a) : a, transposeB ? t(b) : b);
}

let matMulGradRegistered = false;

/** The BatchMatMul gradient of tfjs uses transposed matMuls; re-register it with explicit transposes. */
export function registerMatMulGradient(): void {
  if (matMulGradRegistered) return;
  tf.registerGradient({
    kernelName: "BatchMatMul",
    inputsToSave: ["a", "b"],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved;
      const g = Array.isArray(dy) ? dy[0] : dy;
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB)
        return { a: () => matMulFast(g, b, false, true), b: () => matMulFast(a, g, true, false) };
      if (!transposeA && transposeB)
        return { a: () => matMulFast(g, b, false, false), b: () => matMulFast(g, a, true, false) };
      if (transposeA && !transposeB)
        return { a: () => matMulFast(b, g, false, true), b: () => matMulFast(a, g, false, false) };
      return { a: () => matMulFast(b, g, true, true), b: () => matMulFast(g, a, true, true) };
    },
  });
  matMulGradRegistered = true;
}

/**
 * The wasm backend has no UnsortedSegmentSum kernel, which tfjs uses for the gradient of gather. Re-register the
 * GatherV2 gradient with scatterND, which sums the rows of duplicate ids (as segment-sum does) and exists on
 * every backend. Other axes are moved to the front by a transpose; batchDims > 0 keeps the original gradient.
 */
export function registerGatherGradient(): void {
  if (gatherGradRegistered) return;
  const original = tf.getGradient("GatherV2");
  tf.registerGradient({
    kernelName: "GatherV2",
    inputsToSave: ["x", "indices"],
    gradFunc: (dy, saved, attrs) => {
      const [x, indices] = saved;
      const { axis, batchDims } = attrs as unknown as { axis: number; batchDims: number };
      const dyT = Array.isArray(dy) ? dy[0] : dy;
      if (batchDims && batchDims > 0 && original) return original.gradFunc(dy, saved, attrs);
      const ax = axis < 0 ? axis + x.rank : axis;
      return {
        x: () => gatherGrad(dyT, x.shape, indices, ax),
        indices: () => indices,
      };
    },
  });
  gatherGradRegistered = true;
}

function gatherGrad(dy: tf.Tensor, xShape: number[], indices: tf.Tensor, axis: number): tf.Tensor {
  return tf.tidy(() => {
    const outer = xShape.slice(0, axis).reduce((a, b) => a * b, 1);
    const inner = xShape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const n = xShape[axis];
    const nIdx = indices.size;
    const flatIdx = tf.reshape(indices, [nIdx, 1]).toInt();
    if (axis === 0) {
      const upd = tf.reshape(dy, [nIdx, inner]);
      return tf.reshape(tf.scatterND(flatIdx, upd, [n, inner]), xShape);
    }
    // dy: [outer, nIdx, inner] -> [nIdx, outer, inner], scatter on the first axis, move it back.
    const upd = tf.transpose(tf.reshape(dy, [outer, nIdx, inner]), [1, 0, 2]);
    const summed = tf.scatterND(flatIdx, upd, [n, outer, inner]);
    return tf.reshape(tf.transpose(summed, [1, 0, 2]), xShape);
  });
}
