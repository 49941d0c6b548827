// The hand-written response serialiser writes exactly what JSON.stringify writes, shared arrays included.
import { describe, expect, it } from "vitest";
import { serializeFeastResponse } from "../adapters/server/serialize.js";
import { Metrics } from "../adapters/server/metrics.js";

describe("serializeFeastResponse", () => {
  it("matches JSON.stringify, with statuses and timestamps shared across a view's features", () => {
    const statuses = ["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"];
    const stamps = ["2024-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2023-01-01T00:00:00.5Z"];
    const r = {
      metadata: { feature_names: ["user_id", "age", "name \"q\"", "tags"] },
      results: [
        { values: [1, 2, 3], statuses: ["PRESENT", "PRESENT", "PRESENT"], event_timestamps: ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"] },
        { values: [31, null, 1.5e300], statuses, event_timestamps: stamps },
        { values: ["a\nb", null, "ü\u2028"], statuses, event_timestamps: stamps },
        { values: [[1, 2], null, []], statuses, event_timestamps: stamps },
      ],
    };
    expect(serializeFeastResponse(r)).toBe(JSON.stringify(r));
    expect(serializeFeastResponse({ metadata: { feature_names: [] }, results: [] })).toBe('{"metadata":{"feature_names":[]},"results":[]}');
  });
});

describe("Metrics", () => {
  it("renders Prometheus text: counters, cumulative histogram buckets, escaped labels", () => {
    const m = new Metrics();
    const count = m.counter("reqs_total", "requests");
    const lat = m.histogram("lat_seconds", "latency", [0.001, 0.01]);
    count({ path: "/a", status: "200" });
    count({ path: "/a", status: "200" });
    count({ path: 'x"y', status: "500" });
    lat({ path: "/a" }, 0.0005);
    lat({ path: "/a" }, 0.005);
    lat({ path: "/a" }, 5);
    m.gauge("up", "uptime", () => 7);
    const text = m.render();
    expect(text).toContain("# TYPE reqs_total counter\n");
    expect(text).toContain('reqs_total{path="/a",status="200"} 2\n');
    expect(text).toContain('reqs_total{path="x\\"y",status="500"} 1\n');
    expect(text).toContain('lat_seconds_bucket{path="/a",le="0.001"} 1\n');
    expect(text).toContain('lat_seconds_bucket{path="/a",le="0.01"} 2\n');
    expect(text).toContain('lat_seconds_bucket{path="/a",le="+Inf"} 3\n');
    expect(text).toContain('lat_seconds_count{path="/a"} 3\n');
    expect(text).toContain("up 7\n");
  });
});
