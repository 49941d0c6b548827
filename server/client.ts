// A typed client for the feature server (fstore's or Feast's: same REST shapes), on Node's global fetch.

export type FeatureStatus = "PRESENT" | "NOT_FOUND" | "OUTSIDE_MAX_AGE";

/** Feast's /get-online-features answer: column-oriented, join keys first, then features. */
export interface OnlineFeaturesResponse {
  metadata: { feature_names: string[] };
  results: Array<{ values: unknown[]; statuses: FeatureStatus[]; event_timestamps: string[] }>;
}

export interface GetOnlineFeaturesParams {
  /** "view:feature" references... */
  features?: string[];
  /** ...or the name of a feature service */
  featureService?: string;
  /** entity columns: { user_id: [1, 2] } */
  entities: Record<string, unknown[]>;
  fullFeatureNames?: boolean;
}

export interface PushParams {
  pushSourceName: string;
  /** columns: { user_id: [1], event_timestamp: ["2024-01-01T00:00:00Z"], age: [32] } */
  df: Record<string, unknown[]>;
  to?: "online" | "offline" | "online_and_offline";
}

export interface WriteResult {
  status: "ok";
  /** rows sent */
  rows: number;
  /** rows the online store took (older rows than the stored ones are skipped) */
  written: number;
}

export interface FeatureServerClientOptions {
  /** e.g. "http://127.0.0.1:6566" */
  url: string;
  authToken?: string;
  /** per request; default 10 s */
  timeoutMs?: number;
}

/** A non-2xx answer; `status` is the HTTP status, the message the server's `error`. */
export class FeatureServerError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "FeatureServerError";
  }
}

export class FeatureServerClient {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(opts: FeatureServerClientOptions | string) {
    const o = typeof opts === "string" ? { url: opts } : opts;
    this.base = o.url.replace(/\/+$/, "");
    this.headers = { "content-type": "application/json" };
    if (o.authToken) this.headers.authorization = `Bearer ${o.authToken}`;
    this.timeoutMs = o.timeoutMs ?? 10_000;
  }

  async getOnlineFeatures(p: GetOnlineFeaturesParams): Promise<OnlineFeaturesResponse> {
    const body: Record<string, unknown> = { entities: p.entities };
    if (p.features) body.features = p.features;
    if (p.featureService) body.feature_service = p.featureService;
    if (p.fullFeatureNames !== undefined) body.full_feature_names = p.fullFeatureNames;
    return this.post<OnlineFeaturesResponse>("/get-online-features", body);
  }

  /** The same read, as columns by name: { user_id: [1, 2], age: [31, null] }. */
  async getOnlineFeaturesAsObject(p: GetOnlineFeaturesParams): Promise<Record<string, unknown[]>> {
    return responseToObject(await this.getOnlineFeatures(p));
  }

  async push(p: PushParams): Promise<WriteResult> {
    return this.post<WriteResult>("/push", { push_source_name: p.pushSourceName, df: p.df, to: p.to ?? "online" });
  }

  async writeToOnlineStore(featureViewName: string, df: Record<string, unknown[]>): Promise<WriteResult> {
    return this.post<WriteResult>("/write-to-online-store", { feature_view_name: featureViewName, df });
  }

  async materialize(startTs: string | Date, endTs: string | Date, featureViews?: string[]): Promise<unknown> {
    return this.post("/materialize", {
      start_ts: iso(startTs),
      end_ts: iso(endTs),
      ...(featureViews ? { feature_views: featureViews } : {}),
    });
  }

  async materializeIncremental(endTs: string | Date, featureViews?: string[]): Promise<unknown> {
    return this.post("/materialize-incremental", {
      end_ts: iso(endTs),
      ...(featureViews ? { feature_views: featureViews } : {}),
    });
  }

  /** True when the server answers 200 on /health. */
  async health(): Promise<boolean> {
    try {
      const res = await fetch(`${this.base}/health`, { signal: AbortSignal.timeout(this.timeoutMs) });
      await res.arrayBuffer();
      return res.ok;
    } catch {
      return false;
    }
  }

  private async post<T>(path: string, body: unknown): Promise<T> {
    const res = await fetch(`${this.base}${path}`, {
      method: "POST",
      headers: this.headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) {
      let msg = text;
      try {
        const j = JSON.parse(text) as { error?: unknown; detail?: unknown };
        const detail = j.error ?? j.detail;
        msg = typeof detail === "string" ? detail : detail === undefined ? text : JSON.stringify(detail);
      } catch {
        // not JSON: keep the text
      }
      throw new FeatureServerError(res.status, `${path}: HTTP ${res.status}: ${msg}`);
    }
    return (text ? JSON.parse(text) : null) as T;
  }
}

function iso(t: string | Date): string {
  return t instanceof Date ? t.toISOString() : t;
}

/** Column-wise values by feature name from a Feast response (map by name, never by position). */
export function responseToObject(r: OnlineFeaturesResponse): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  r.metadata.feature_names.forEach((name, i) => (out[name] = r.results[i].values));
  return out;
}
