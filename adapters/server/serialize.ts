// The get-online-features answer as JSON text, written by hand: the statuses and event timestamps of a
// feature view are one array shared by all its features (OnlineResponse builds them once per view), so
// each is serialised once and reused, instead of once per feature as JSON.stringify would.

export interface FeastResponseShape {
  metadata: { feature_names: string[] };
  results: Array<{ values: unknown[]; statuses: string[]; event_timestamps: string[] }>;
}

export function serializeFeastResponse(r: FeastResponseShape): string {
  const shared = new Map<unknown[], string>();
  const once = (a: string[]): string => {
    let s = shared.get(a);
    if (s === undefined) {
      s = JSON.stringify(a);
      shared.set(a, s);
    }
    return s;
  };
  let out = `{"metadata":{"feature_names":${JSON.stringify(r.metadata.feature_names)}},"results":[`;
  const results = r.results;
  for (let i = 0; i < results.length; i++) {
    const x = results[i];
    out += `${i ? "," : ""}{"values":${JSON.stringify(x.values)},"statuses":${once(x.statuses)},"event_timestamps":${once(x.event_timestamps)}}`;
  }
  return out + "]}";
}
