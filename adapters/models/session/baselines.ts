// The baselines a session model must beat (Ludewig, Latifi and Jannach): popularity, V-SkNN (session kNN
// with recent items of the current session weighted more) and sequential rules (first-order transitions
// weighted by their distance). Trained incrementally (sessions are added day by day), scored on typed arrays.
import type { Sessions } from "./data.js";
import {
  PopularityScorer,
  SessionScorer,
  countItems,
  type Catalogue,
  type NormalizedQuery,
  type SessionModelKind,
} from "./scorer.js";

/** Named typed arrays and settings: what a model folder stores (see artifacts.ts). */
export interface SessionArtifact {
  kind: SessionModelKind;
  config: Record<string, number | string | boolean>;
  tensors: Array<{ name: string; shape: number[]; data: Float32Array | Int32Array }>;
}

/** A session model that learns from sessions day by day and answers through a typed-array scorer. */
export interface SessionTrainer {
  readonly kind: SessionModelKind;
  readonly catalogue: Catalogue;
  /** learn from sessions `idx` (more sessions may follow: training is incremental) */
  train(sessions: Sessions, idx: Int32Array): { samples: number; seconds: number; loss?: number };
  /** a scorer for the model as it is now (a snapshot: later training does not change it) */
  scorer(): SessionScorer;
  artifact(): SessionArtifact;
  dispose(): void;
}

export function snapshot(cat: Catalogue): Catalogue {
  return { ...cat, counts: cat.counts.slice() };
}

function timed<T>(f: () => T): { value: T; seconds: number } {
  const t0 = performance.now();
  const value = f();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

export class PopularityTrainer implements SessionTrainer {
  readonly kind = "session-popularity" as const;
  constructor(
    readonly catalogue: Catalogue,
    readonly window: number,
  ) {}
  train(s: Sessions, idx: Int32Array) {
    const t = timed(() => countItems(this.catalogue, s.offsets, s.items, idx));
    return { samples: idx.length, seconds: t.seconds };
  }
  scorer(): SessionScorer {
    return new PopularityScorer(snapshot(this.catalogue), this.window);
  }
  artifact(): SessionArtifact {
    return { kind: this.kind, config: { window: this.window }, tensors: [] };
  }
  dispose(): void {}
}

/** Sequential rules: after item a, item b `d` steps later (d <= steps) adds 1/d to the rule a -> b. */
export class RulesTrainer implements SessionTrainer {
  readonly kind = "session-rules" as const;
  private rules = new Map<number, Map<number, number>>();
  constructor(
    readonly catalogue: Catalogue,
    readonly window: number,
    readonly steps = 10,
  ) {}

  train(s: Sessions, idx: Int32Array) {
    const first = this.catalogue.firstItemIndex;
    const t = timed(() => {
      countItems(this.catalogue, s.offsets, s.items, idx);
      for (const i of idx) {
        const a0 = s.offsets[i];
        const a1 = s.offsets[i + 1];
        for (let p = a0; p < a1; p++) {
          const a = s.items[p];
          if (a < first) continue;
          let row = this.rules.get(a);
          for (let q = p + 1; q < Math.min(a1, p + 1 + this.steps); q++) {
            const b = s.items[q];
            if (b < first) continue;
            if (!row) this.rules.set(a, (row = new Map<number, number>()));
            row.set(b, (row.get(b) ?? 0) + 1 / (q - p));
          }
        }
      }
    });
    return { samples: idx.length, seconds: t.seconds };
  }

  /** The rules as CSR: row a holds (col, weight) pairs in [rowStart[a], rowStart[a + 1]). */
  private csr(): { rowStart: Int32Array; cols: Int32Array; weights: Float32Array } {
    const n = this.catalogue.itemCardinality;
    const rowStart = new Int32Array(n + 1);
    for (const [a, row] of this.rules) rowStart[a + 1] = row.size;
    for (let a = 0; a < n; a++) rowStart[a + 1] += rowStart[a];
    const cols = new Int32Array(rowStart[n]);
    const weights = new Float32Array(rowStart[n]);
    for (const [a, row] of this.rules) {
      let p = rowStart[a];
      for (const [b, w] of [...row].sort((x, y) => x[0] - y[0])) {
        cols[p] = b;
        weights[p++] = w;
      }
    }
    return { rowStart, cols, weights };
  }

  scorer(): SessionScorer {
    const c = this.csr();
    return new RulesScorer(snapshot(this.catalogue), this.window, c.rowStart, c.cols, c.weights);
  }

  artifact(): SessionArtifact {
    const c = this.csr();
    return {
      kind: this.kind,
      config: { window: this.window, steps: this.steps },
      tensors: [
        { name: "rule_start", shape: [c.rowStart.length], data: c.rowStart },
        { name: "rule_items", shape: [c.cols.length], data: c.cols },
        { name: "rule_weights", shape: [c.weights.length], data: c.weights },
      ],
    };
  }
  dispose(): void {}
}

export class RulesScorer extends SessionScorer {
  readonly kind = "session-rules" as const;
  constructor(
    cat: Catalogue,
    window: number,
    readonly rowStart: Int32Array,
    readonly cols: Int32Array,
    readonly weights: Float32Array,
  ) {
    super(cat, window);
  }
  protected scoreInto(q: NormalizedQuery, out: Float32Array): void {
    const last = q.items[q.items.length - 1];
    if (last < this.catalogue.firstItemIndex) return;
    for (let p = this.rowStart[last]; p < this.rowStart[last + 1]; p++) out[this.cols[p]] += this.weights[p];
  }
}

/**
 * V-SkNN: the current session's items weigh 1/(distance from its end + 1); a past session's similarity is the
 * sum of the weights of the items it shares; of the `sampleSize` most recent sessions sharing an item, the `k`
 * most similar vote for their items with their similarity.
 */
export class KnnTrainer implements SessionTrainer {
  readonly kind = "session-knn" as const;
  private offsets: number[] = [0];
  private items: number[] = [];
  constructor(
    readonly catalogue: Catalogue,
    readonly window: number,
    readonly k = 100,
    readonly sampleSize = 500,
  ) {}

  train(s: Sessions, idx: Int32Array) {
    const first = this.catalogue.firstItemIndex;
    const t = timed(() => {
      countItems(this.catalogue, s.offsets, s.items, idx);
      for (const i of idx) {
        const seen = new Set<number>();
        for (let p = s.offsets[i]; p < s.offsets[i + 1]; p++) {
          const it = s.items[p];
          if (it >= first && !seen.has(it)) {
            seen.add(it);
            this.items.push(it);
          }
        }
        if (seen.size) this.offsets.push(this.items.length);
      }
    });
    return { samples: idx.length, seconds: t.seconds };
  }

  scorer(): SessionScorer {
    return new KnnScorer(
      snapshot(this.catalogue),
      this.window,
      Int32Array.from(this.offsets),
      Int32Array.from(this.items),
      this.k,
      this.sampleSize,
    );
  }

  artifact(): SessionArtifact {
    return {
      kind: this.kind,
      config: { window: this.window, k: this.k, sampleSize: this.sampleSize },
      tensors: [
        { name: "session_start", shape: [this.offsets.length], data: Int32Array.from(this.offsets) },
        { name: "session_items", shape: [this.items.length], data: Int32Array.from(this.items) },
      ],
    };
  }
  dispose(): void {}
}

export class KnnScorer extends SessionScorer {
  readonly kind = "session-knn" as const;
  /** item -> the sessions holding it, oldest first (CSR) */
  private readonly itemStart: Int32Array;
  private readonly itemSessions: Int32Array;
  private readonly sim: Float32Array;
  private readonly weight: Float32Array;

  /** `sessionStart`/`sessionItems`: the training sessions in time order (CSR of distinct item indices) */
  constructor(
    cat: Catalogue,
    window: number,
    readonly sessionStart: Int32Array,
    readonly sessionItems: Int32Array,
    readonly k: number,
    readonly sampleSize: number,
  ) {
    super(cat, window);
    const n = cat.itemCardinality;
    const nS = sessionStart.length - 1;
    this.itemStart = new Int32Array(n + 1);
    for (const it of sessionItems) this.itemStart[it + 1]++;
    for (let i = 0; i < n; i++) this.itemStart[i + 1] += this.itemStart[i];
    this.itemSessions = new Int32Array(sessionItems.length);
    const fill = this.itemStart.slice(0, n);
    for (let s = 0; s < nS; s++)
      for (let p = sessionStart[s]; p < sessionStart[s + 1]; p++) this.itemSessions[fill[sessionItems[p]]++] = s;
    this.sim = new Float32Array(nS);
    this.weight = new Float32Array(n);
  }

  protected scoreInto(q: NormalizedQuery, out: Float32Array): void {
    const first = this.catalogue.firstItemIndex;
    const L = q.items.length;
    const w = this.weight;
    const qItems: number[] = [];
    for (let p = 0; p < L; p++) {
      const it = q.items[p];
      if (it < first) continue;
      const v = 1 / (L - p);
      if (w[it] === 0) qItems.push(it);
      if (v > w[it]) w[it] = v;
    }
    // candidate sessions: the most recent `sampleSize` holding any query item (session index = time order)
    const cand: number[] = [];
    for (const it of qItems) {
      const e = this.itemStart[it + 1];
      for (let p = Math.max(this.itemStart[it], e - this.sampleSize); p < e; p++) cand.push(this.itemSessions[p]);
    }
    const uniq = [...new Set(cand)].sort((a, b) => b - a).slice(0, this.sampleSize);
    const sim = this.sim;
    for (const s of uniq) {
      let v = 0;
      for (let p = this.sessionStart[s]; p < this.sessionStart[s + 1]; p++) v += w[this.sessionItems[p]];
      sim[s] = v;
    }
    // the k most similar (ties: the more recent)
    uniq.sort((a, b) => sim[b] - sim[a] || b - a);
    for (const s of uniq.slice(0, this.k))
      for (let p = this.sessionStart[s]; p < this.sessionStart[s + 1]; p++) out[this.sessionItems[p]] += sim[s];
    for (const s of uniq) sim[s] = 0;
    for (const it of qItems) w[it] = 0;
  }
}
