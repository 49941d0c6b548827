// `npm run bench [-- name ...]`: runs every bench/*.bench.ts (or the ones named) one after another.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { FstoreError } from "../common/errors.js";

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort();
if (files.length === 0) {
  console.error(
    `no benchmark matches ${wanted.join(", ")}; have: ${readdirSync(here)
      .filter((f) => f.endsWith(".bench.ts"))
      .join(", ")}`,
  );
  process.exit(1);
}
for (const f of files) {
  console.log(`\n=== ${f} (${new Date().toISOString()}) ===`);
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { main?: () => Promise<void> };
  if (typeof mod.main !== "function") throw new Error(`bench/${f} must export async function main()`);
  try {
    await mod.main();
  } catch (e) {
    // fstore's own errors (a data set missing from FSTORE_DATA_DIR, bad input) are one line, not a stack
    if (!(e instanceof FstoreError)) throw e;
    console.error(`bench/${f}: ${e.message}`);
    process.exit(1);
  }
}
