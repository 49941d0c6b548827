// Next-item evaluation as notebook 004 does it, without its leakage: day-by-day incremental training (train on
// days <= i, evaluate on day i + 1, for every day), each evaluation session's last item predicted from its
// prefix over the whole catalogue the model knows; items the model never saw in training (new on the
// evaluation day) count as misses, never as skipped rows.
import type { ProgressSink } from "../../../common/progress.js";
import { silentProgress } from "../../../common/progress.js";
import type { SessionTrainer } from "./baselines.js";
import type { Sessions } from "./data.js";
import { topKItems, type SessionQuery, type SessionScorer } from "./scorer.js";

export const SESSION_METRICS = ["ndcg_at_10", "ndcg_at_20", "recall_at_10", "recall_at_20", "mrr_at_20"] as const;
export type SessionMetric = (typeof SESSION_METRICS)[number];

export interface EvalResult {
  metrics: Record<SessionMetric, number>;
  /** sessions with a prefix and a target (>= 2 items) */
  evaluated: number;
  /** sessions with fewer than 2 items: nothing to predict */
  tooShort: number;
  /** evaluated sessions whose target the model never saw in training (all misses) */
  unknownTargets: number;
}

/** The query of session `s` over items [offsets[s], end) (its side features included). */
export function sessionQuery(s: Sessions, i: number, end = s.offsets[i + 1]): SessionQuery {
  const a = s.offsets[i];
  return {
    items: s.items.subarray(a, end),
    categorical: s.categorical.map((c) => c.subarray(a, end)),
    continuous: s.continuous.map((c) => c.subarray(a, end)),
  };
}

/** NDCG@10/20, Recall@10/20 (= hit rate: one relevant item) and MRR@20 of a 1-based rank (0: not in the top 20). */
export function rankMetrics(rank: number): Record<SessionMetric, number> {
  const hit = (k: number) => (rank >= 1 && rank <= k ? 1 : 0);
  const ndcg = (k: number) => (hit(k) ? 1 / Math.log2(rank + 1) : 0);
  return {
    ndcg_at_10: ndcg(10),
    ndcg_at_20: ndcg(20),
    recall_at_10: hit(10),
    recall_at_20: hit(20),
    mrr_at_20: hit(20) ? 1 / rank : 0,
  };
}

export interface EvaluateOptions {
  /** called with each evaluated session and its top 20 (e.g. to compare with the served answer) */
  onSession?: (session: number, top: Int32Array) => void;
  progress?: ProgressSink;
}

/** Mean metrics of `scorer` on sessions `idx`: each session's last item predicted from the items before it. */
export function evaluateSessions(
  scorer: SessionScorer,
  s: Sessions,
  idx: ArrayLike<number>,
  opts: EvaluateOptions = {},
): EvalResult {
  const sum: Record<SessionMetric, number> = {
    ndcg_at_10: 0,
    ndcg_at_20: 0,
    recall_at_10: 0,
    recall_at_20: 0,
    mrr_at_20: 0,
  };
  const progress = opts.progress ?? silentProgress;
  let evaluated = 0;
  let tooShort = 0;
  let unknownTargets = 0;
  const counts = scorer.catalogue.counts;
  progress.start(`evaluate ${scorer.kind}`, idx.length);
  for (let j = 0; j < idx.length; j++) {
    const i = idx[j];
    const end = s.offsets[i + 1];
    if (end - s.offsets[i] < 2) {
      tooShort++;
      continue;
    }
    const target = s.items[end - 1];
    const known = target >= 0 && target < counts.length && counts[target] > 0;
    if (!known) unknownTargets++;
    const scores = scorer.scores(sessionQuery(s, i, end - 1)) as Float32Array;
    const top = topKItems(scores, scorer.catalogue, 20).items;
    opts.onSession?.(i, top);
    const rank = known ? top.indexOf(target) + 1 : 0;
    const m = rankMetrics(rank);
    for (const key of SESSION_METRICS) sum[key] += m[key];
    evaluated++;
    if ((j & 1023) === 0) progress.tick(j + 1);
  }
  progress.stop();
  const d = Math.max(evaluated, 1);
  const metrics = Object.fromEntries(SESSION_METRICS.map((key) => [key, sum[key] / d])) as Record<
    SessionMetric,
    number
  >;
  return { metrics, evaluated, tooShort, unknownTargets };
}

export interface DayResult extends EvalResult {
  /** the evaluation day; the model was trained on every earlier day */
  day: number;
  trainSessions: number;
  trainSeconds: number;
  trainSamplesPerSecond: number;
  evalSeconds: number;
}

export interface DayByDayOptions {
  /** days to use, ascending (default: every day of the data); the first is only trained on */
  days: number[];
  /** also train on the last day after evaluating it, so the final model has seen every day */
  trainLastDay?: boolean;
  progress?: ProgressSink;
  log?: (line: string) => void;
  onSession?: (model: SessionTrainer, day: number, session: number, top: Int32Array) => void;
}

/** Day-by-day incremental training and next-day evaluation of one model; the model ends trained on the days used. */
export function dayByDay(model: SessionTrainer, s: Sessions, opts: DayByDayOptions): DayResult[] {
  const byDay = new Map<number, number[]>();
  for (let i = 0; i < s.length; i++) {
    const d = s.day[i];
    if (!byDay.has(d)) byDay.set(d, []);
    (byDay.get(d) as number[]).push(i);
  }
  const sessionsOf = (d: number) => Int32Array.from(byDay.get(d) ?? []);
  const out: DayResult[] = [];
  for (let k = 1; k < opts.days.length; k++) {
    const trainDay = opts.days[k - 1];
    const evalDay = opts.days[k];
    const train = sessionsOf(trainDay);
    const t = model.train(s, train);
    const t0 = performance.now();
    const scorer = model.scorer();
    const r = evaluateSessions(scorer, s, sessionsOf(evalDay), {
      progress: opts.progress,
      onSession: opts.onSession ? (i, top) => opts.onSession?.(model, evalDay, i, top) : undefined,
    });
    const evalSeconds = (performance.now() - t0) / 1000;
    out.push({
      day: evalDay,
      trainSessions: train.length,
      trainSeconds: t.seconds,
      trainSamplesPerSecond: t.seconds > 0 ? t.samples / t.seconds : 0,
      evalSeconds,
      ...r,
    });
    opts.log?.(
      `${model.kind}: trained on day ${trainDay} (${train.length} sessions, ${t.seconds.toFixed(1)}s${t.loss !== undefined ? `, loss ${t.loss.toFixed(3)}` : ""}), day ${evalDay}: ndcg@20 ${r.metrics.ndcg_at_20.toFixed(4)} recall@20 ${r.metrics.recall_at_20.toFixed(4)} (${r.evaluated} sessions, ${r.unknownTargets} unknown targets, ${evalSeconds.toFixed(1)}s)`,
    );
  }
  if (opts.trainLastDay !== false && opts.days.length) model.train(s, sessionsOf(opts.days[opts.days.length - 1]));
  return out;
}

/** The mean of each metric over the evaluation days (each day weighs the same, as the notebook averages). */
export function meanOverDays(days: DayResult[]): Record<SessionMetric, number> {
  return Object.fromEntries(
    SESSION_METRICS.map((key) => [key, days.reduce((a, d) => a + d.metrics[key], 0) / Math.max(days.length, 1)]),
  ) as Record<SessionMetric, number>;
}
