// Default settings of the models and training jobs, in one place so the library, `fs train --help` and the README
// agree. Nothing here imports TensorFlow.js: the CLI reads these before it decides to load it.

/** TwoTowerModel's defaults (and so `fs train two-tower`'s). */
export const TWO_TOWER_DEFAULTS = {
  layers: [128, 64],
  // Cosine similarity at temperature 0.05 measured better on MovieLens once histories were recency-pooled.
  l2Normalize: true,
  temperature: 0.05,
  // Without it, in-batch softmax learns popularity-debiased scores and loses to popularity (README "Training").
  logQCorrection: true,
  removeAccidentalHits: true,
  mixedNegatives: 0,
  embeddingUpdate: "lazy",
  learningRate: 0.005,
  seed: 42,
} as const;

/**
 * trainTwoTowerJob's (and `fs train two-tower`'s) loop settings: the rate falls linearly to `learningRateEnd` of
 * its start by the last step (README "Training").
 */
export const TWO_TOWER_JOB_DEFAULTS = { epochs: 5, batchSize: 256, learningRateEnd: 0.3 } as const;

/** DlrmModel's defaults (and so `fs train dlrm`'s). */
export const DLRM_DEFAULTS = {
  embeddingDim: 64,
  bottomLayers: [128, 64],
  topLayers: [128, 64, 32],
  negatives: 0,
  negativeSource: "batch",
  embeddingUpdate: "lazy",
  learningRate: 1e-3,
  seed: 42,
} as const;

/** trainDlrmJob's (and `fs train dlrm`'s) loop settings. */
export const DLRM_JOB_DEFAULTS = { epochs: 3, batchSize: 1024, learningRateEnd: 1 } as const;

/** Settings both training jobs share. */
export const JOB_DEFAULTS = {
  /** share of the latest rows held out for evaluation (the two-tower job: of the positive rows) */
  evalFraction: 0.1,
  k: 10,
  maxEmbeddingDim: 64,
  seed: 42,
} as const;
