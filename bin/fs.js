#!/usr/bin/env node
// The `fs` command: oclif over the compiled library in dist/ (built by `npm install` via "prepare").
import { execute } from "@oclif/core";

await execute({ dir: import.meta.url });
