// Evaluation reports: full-catalogue top-K for retrieval models and the popularity baseline, AUC / log loss for
// ranking models, and an SVG bar chart comparing models.
import { tf } from "./backend.js";
import { auc, evaluateTopK, logLoss } from "./metrics.js";

export type Scorer = (start: number, end: number) => Float32Array;

/** A relevant "item" no ranking holds: an evaluation row whose item is not in the catalogue counts as a miss. */
export const NOT_IN_CATALOGUE = -1;

/** Dot-product scores of query embeddings [nUsers, dim] against item embeddings [nItems, dim]. */
export function embeddingScorer(
  queries: Float32Array,
  items: Float32Array,
  dim: number,
): { score: Scorer; dispose: () => void } {
  const nItems = items.length / dim;
  const itemsT = tf.tidy(() => tf.transpose(tf.tensor2d(items, [nItems, dim])));
  return {
    score: (s, e) => {
      const t = tf.tidy(() => tf.matMul(tf.tensor2d(queries.subarray(s * dim, e * dim), [e - s, dim]), itemsT));
      const d = t.dataSync() as Float32Array;
      t.dispose();
      return d;
    },
    dispose: () => itemsT.dispose(),
  };
}

/** The same popularity scores for every user. */
export function popularityScorer(counts: Float32Array): Scorer {
  return (s, e) => {
    const out = new Float32Array((e - s) * counts.length);
    for (let u = 0; u < e - s; u++) out.set(counts, u * counts.length);
    return out;
  };
}

/** recall/ndcg/mrr/map/precision @k, keyed like Merlin's metrics ("recall_at_10"). */
export function retrievalReport(
  score: Scorer,
  opts: {
    nUsers: number;
    nItems: number;
    k: number;
    relevant: Array<ReadonlySet<number>>;
    exclude?: Array<ReadonlySet<number> | undefined>;
  },
): Record<string, number> {
  const m = evaluateTopK({ ...opts, scoreUsers: score });
  const k = opts.k;
  return {
    [`recall_at_${k}`]: m.recall,
    [`ndcg_at_${k}`]: m.ndcg,
    [`mrr_at_${k}`]: m.mrr,
    [`map_at_${k}`]: m.map,
    [`precision_at_${k}`]: m.precision,
    users: m.users,
  };
}

export function rankingReport(probs: ArrayLike<number>, labels: ArrayLike<number>): Record<string, number> {
  return { auc: auc(probs, labels), log_loss: logLoss(probs, labels), rows: probs.length };
}

const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A grouped bar chart: one group per metric, one bar per model, values printed above the bars. */
export function comparisonChartSvg(
  title: string,
  results: Record<string, Record<string, number>>,
  metrics: string[],
): string {
  const models = Object.keys(results);
  const W = 160 + metrics.length * (models.length * 46 + 40);
  const H = 340;
  const top = 50;
  const base = 270;
  const max = Math.max(1e-9, ...models.flatMap((m) => metrics.map((k) => results[m][k] ?? 0)));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="20" y="28" font-size="16" font-weight="bold">${esc(title)}</text>`,
    `<line x1="60" y1="${base}" x2="${W - 20}" y2="${base}" stroke="#333"/>`,
  ];
  metrics.forEach((metric, gi) => {
    const gx = 80 + gi * (models.length * 46 + 40);
    models.forEach((model, mi) => {
      const v = results[model][metric] ?? 0;
      const h = ((base - top) * v) / max;
      const x = gx + mi * 46;
      parts.push(
        `<rect x="${x}" y="${(base - h).toFixed(1)}" width="40" height="${h.toFixed(1)}" fill="${PALETTE[mi % PALETTE.length]}"/>`,
      );
      parts.push(
        `<text x="${x + 20}" y="${(base - h - 4).toFixed(1)}" text-anchor="middle" font-size="10">${v.toFixed(3)}</text>`,
      );
    });
    parts.push(
      `<text x="${gx + (models.length * 46) / 2}" y="${base + 18}" text-anchor="middle">${esc(metric)}</text>`,
    );
  });
  models.forEach((model, mi) => {
    const y = H - 40 + Math.floor(mi / 3) * 16;
    const x = 60 + (mi % 3) * 220;
    parts.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${PALETTE[mi % PALETTE.length]}"/>`);
    parts.push(`<text x="${x + 18}" y="${y}">${esc(model)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}
