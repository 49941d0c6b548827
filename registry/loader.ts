// Loads a feature repository: every exported definition in its .ts files, with no build step.
// jiti compiles the files on the fly and maps the import name "fstore" to the running library,
// so repos work from any folder, also outside this checkout.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ValidationError, errorMessage } from "../common/errors.js";
import { type Definition, isDefinition } from "./definitions.js";

/**
 * The library entry "fstore" maps to: the compiled dist/index.js (loaded natively, fast) when there is
 * one, else index.ts next to this source file (compiled by jiti: slow, only when running from source
 * without a build). Definitions are recognised by brand, so either copy works.
 */
export function libraryEntry(): string {
  if (!import.meta.url.endsWith(".ts")) return fileURLToPath(new URL("../index.js", import.meta.url));
  const compiled = fileURLToPath(new URL("../dist/index.js", import.meta.url));
  return existsSync(compiled) ? compiled : fileURLToPath(new URL("../index.ts", import.meta.url));
}

const SKIP_DIRS = new Set(["node_modules", "data", "dist", ".git", ".tmp"]);

/** The .ts files of a repo, recursively, skipping data/, node_modules/, dot folders and declaration files. */
export function repoFiles(repoPath: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith(".")) continue;
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) {
        if (!SKIP_DIRS.has(name)) walk(p);
      } else if (/\.(ts|mts)$/.test(name) && !name.endsWith(".d.ts") && !/\.(test|spec)\.ts$/.test(name)) {
        out.push(p);
      }
    }
  };
  walk(repoPath);
  return out;
}

export interface LoadedDefinition {
  definition: Definition;
  /** repo-relative file that exported it */
  file: string;
  /** export name */
  exportName: string;
}

/** Import one TypeScript module with "fstore" mapped to this library. */
export async function importTs(file: string): Promise<Record<string, unknown>> {
  const { createJiti } = await import("jiti"); // only commands that read a repo pay for the compiler
  const jiti = createJiti(import.meta.url, {
    alias: { fstore: libraryEntry() },
    moduleCache: false,
    interopDefault: false,
    tryNative: true,
  });
  return await jiti.import<Record<string, unknown>>(file);
}

/**
 * Every exported definition of the repo, each once (a definition re-exported by several files keeps its
 * first file). Data sources used by views need not be exported: they are registered with their view.
 */
export async function loadRepoDefinitions(repoPath: string): Promise<LoadedDefinition[]> {
  const repo = resolve(repoPath);
  const files = repoFiles(repo);
  const seen = new Map<Definition, LoadedDefinition>();
  for (const file of files) {
    const rel = relative(repo, file);
    let mod: Record<string, unknown>;
    try {
      mod = await importTs(file);
    } catch (e) {
      throw new ValidationError(`${rel}: ${errorMessage(e)}`, { cause: e });
    }
    for (const [exportName, value] of Object.entries(mod)) {
      if (isDefinition(value) && !seen.has(value)) seen.set(value, { definition: value, file: rel, exportName });
    }
  }
  return [...seen.values()];
}
