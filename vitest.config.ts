import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Redis-backed suites share one server; files run in parallel on 2 cores but each uses its own key prefix.
    pool: "forks",
  },
});
