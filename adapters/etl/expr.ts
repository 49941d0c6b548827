// The expression language lives in common/expr.ts (the feature store filters with it too).
export * from "../../common/expr.js";
