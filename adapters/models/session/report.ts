// The session job's report: a table of mean metrics per model, NDCG@20 per evaluation day, and SVG charts in
// the style of the other training reports (one group per day or metric, one bar per model).
import { comparisonChartSvg } from "../evaluate.js";
import { SESSION_METRICS, type DayResult, type SessionMetric } from "./evaluate.js";

export function resultsTable(
  mean: Record<string, Record<SessionMetric, number>>,
  perDay: Record<string, DayResult[]>,
): string {
  const models = Object.keys(mean);
  const lines = [
    `| model | ${SESSION_METRICS.join(" | ")} |`,
    `| --- | ${SESSION_METRICS.map(() => "---:").join(" | ")} |`,
    ...models.map((m) => `| ${m} | ${SESSION_METRICS.map((k) => mean[m][k].toFixed(4)).join(" | ")} |`),
  ];
  const days = perDay[models[0]]?.map((d) => d.day) ?? [];
  if (days.length) {
    lines.push(
      "",
      `NDCG@20 per evaluation day (trained on every earlier day):`,
      "",
      `| model | ${days.map((d) => `day ${d}`).join(" | ")} |`,
      `| --- | ${days.map(() => "---:").join(" | ")} |`,
      ...models.map((m) => `| ${m} | ${perDay[m].map((d) => d.metrics.ndcg_at_20.toFixed(4)).join(" | ")} |`),
      "",
      `| day | ${days.map((d) => String(d)).join(" | ")} |`,
      `| --- | ${days.map(() => "---:").join(" | ")} |`,
      `| sessions evaluated | ${perDay[models[0]].map((d) => d.evaluated).join(" | ")} |`,
      `| targets unseen in training (misses) | ${perDay[models[0]].map((d) => d.unknownTargets).join(" | ")} |`,
    );
  }
  return lines.join("\n") + "\n";
}

/** NDCG@20 per evaluation day, one bar per model. */
export function perDayChartSvg(title: string, perDay: Record<string, DayResult[]>, metric: SessionMetric): string {
  const results: Record<string, Record<string, number>> = {};
  for (const [m, days] of Object.entries(perDay))
    results[m] = Object.fromEntries(days.map((d) => [`day ${d.day}`, d.metrics[metric]]));
  const groups = Object.values(perDay)[0]?.map((d) => `day ${d.day}`) ?? [];
  return comparisonChartSvg(title, results, groups);
}

export function meanChartSvg(title: string, mean: Record<string, Record<SessionMetric, number>>): string {
  return comparisonChartSvg(title, mean, [...SESSION_METRICS]);
}
