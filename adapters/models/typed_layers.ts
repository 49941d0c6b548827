// Dense layers on plain typed arrays (row-major kernels), shared by the serving-side scorers: weights copied out
// of TensorFlow.js once, then every request runs in JavaScript with no tensor allocation.
import { ValidationError } from "../../common/errors.js";
import type { tf } from "./backend.js";
import type { DenseLayer } from "./nn.js";

export interface Dense {
  /** row-major [inDim, outDim] */
  w: Float32Array;
  b: Float32Array;
  inDim: number;
  outDim: number;
  activation: DenseLayer["activation"];
}

export function denseOf(
  kernel: Float32Array,
  bias: Float32Array,
  inDim: number,
  outDim: number,
  activation: DenseLayer["activation"],
): Dense {
  if (kernel.length !== inDim * outDim || bias.length !== outDim)
    throw new Error(`dense layer: kernel ${kernel.length} / bias ${bias.length} values for ${inDim}x${outDim}`);
  return { w: kernel, b: bias, inDim, outDim, activation };
}

/** The weights of a layers-model layer as typed arrays (kernel, bias, ...). */
export function layerWeights(model: tf.LayersModel, name: string, who: string): Float32Array[] {
  const layer = model.layers.find((l) => l.name === name);
  if (!layer) throw new ValidationError(`${who}: the model has no layer "${name}"`);
  return layer.getWeights().map((t) => Float32Array.from(t.dataSync() as Float32Array));
}

/** A layers-model layer's activation, when it is one the typed-array layers compute. */
export function layerActivation(model: tf.LayersModel, name: string, who: string): DenseLayer["activation"] {
  const layer = model.layers.find((l) => l.name === name);
  const a = (layer?.getConfig() as { activation?: string } | undefined)?.activation ?? "linear";
  if (a !== "relu" && a !== "linear" && a !== "sigmoid")
    throw new ValidationError(`${who}: layer ${name} has activation ${a}`);
  return a;
}

/** y[0..outDim) = act(x W + b) for one row; skips zero inputs (ReLU outputs are often half zeros). */
export function denseRow(l: Dense, x: Float32Array, xOff: number, y: Float32Array, yOff: number): void {
  const { w, b, inDim, outDim } = l;
  for (let j = 0; j < outDim; j++) y[yOff + j] = b[j];
  addRowTimes(x, xOff, inDim, w, outDim, y, yOff);
  activate(l.activation, y, yOff, outDim);
}

export function activate(a: DenseLayer["activation"], y: Float32Array, off: number, n: number): void {
  if (a === "relu") for (let j = off; j < off + n; j++) y[j] = y[j] > 0 ? y[j] : 0;
  else if (a === "sigmoid") for (let j = off; j < off + n; j++) y[j] = 1 / (1 + Math.exp(-y[j]));
}

/** y[yOff .. yOff+U) += x[xOff .. xOff+width) times the row-major [width, U] kernel (zero inputs skipped). */
export function addRowTimes(
  x: Float32Array,
  xOff: number,
  width: number,
  kernel: Float32Array,
  U: number,
  y: Float32Array,
  yOff: number,
): void {
  for (let k = 0; k < width; k++) {
    const v = x[xOff + k];
    if (v === 0) continue;
    const base = k * U;
    for (let u = 0; u < U; u++) y[yOff + u] += v * kernel[base + u];
  }
}

/** Unknown categories (out of the table) map to index 0, Categorify's null/OOV index, as inputTensors does. */
export function clampId(v: number, rows: number): number {
  return v >= 0 && v < rows ? v : 0;
}
