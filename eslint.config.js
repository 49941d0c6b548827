import js from "@eslint/js";
import tseslint from "typescript-eslint";

const LIBRARY = [
  "index.ts",
  "common/**/*.ts",
  "registry/**/*.ts",
  "stores/**/*.ts",
  "server/**/*.ts",
  "adapters/**/*.ts",
  "cli/**/*.ts",
];

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "**/.tmp/**", "coverage/**", "**/data/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        Buffer: "readonly",
        URL: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        setImmediate: "readonly",
      },
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  // Type-checked rules on the library: floating promises, unsafe any, needless assertions, objects turned into
  // "[object Object]". Left out: unbound-method (operator tables hold static factories) and require-await
  // (async methods that implement an async contract synchronously are deliberate).
  ...tseslint.configs.recommendedTypeChecked.map((c) => ({ ...c, files: LIBRARY })),
  {
    files: LIBRARY,
    languageOptions: { parserOptions: { project: "./tsconfig.json", tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/unbound-method": "off",
      "@typescript-eslint/require-await": "off",
      // tfjs ops are generic in the tensor rank; the assertion names the rank for the reader
      "@typescript-eslint/no-unnecessary-type-assertion": [
        "error",
        { typesToIgnore: ["tf.Tensor1D", "tf.Tensor2D", "tf.Tensor3D", "tf.Scalar"] },
      ],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);
