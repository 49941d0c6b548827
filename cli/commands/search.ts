import { Flags } from "@oclif/core";
import { ValidationError } from "../../common/errors.js";
import type { VectorMetric } from "../../registry/types.js";
import { RepoCommand, splitList } from "../base.js";

function parseJsonList(flag: string, text: string): unknown[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ValidationError(`--${flag} ${JSON.stringify(text)}: expected a JSON list, e.g. '[0.1, 0.2]'`);
  }
  if (!Array.isArray(v)) throw new ValidationError(`--${flag} ${JSON.stringify(text)}: expected a JSON list`);
  return v;
}

export default class Search extends RepoCommand {
  static override description =
    "Find the entities nearest a query vector in a vector field's index, with features; prints Feast's JSON response";
  static override examples = [
    `fs search --features item_embeddings:embedding,item_features:category --query '[0.1, 0.2, ...]' --top-k 10`,
    `fs search -f item_embeddings:embedding --query '[...]' --top-k 10 --exclude '[3, 7]' --filter "category != 3"`,
  ];
  static override flags = {
    features: Flags.string({
      char: "f",
      multiple: true,
      required: true,
      description: "view:feature references (comma-separated or repeated), one of a field with a vector index",
    }),
    query: Flags.string({ char: "q", required: true, description: "the query vector as a JSON list" }),
    "top-k": Flags.integer({ char: "k", default: 10, description: "how many of the nearest entities to answer" }),
    "distance-metric": Flags.string({
      options: ["cosine", "inner_product", "l2"],
      description: "the field's own metric by default; another one only with --exact",
    }),
    exclude: Flags.string({ description: "entity keys never to answer, as a JSON list (e.g. '[3, 7]')" }),
    filter: Flags.string({ description: 'an expression over the answered columns (e.g. "category != 3")' }),
    exact: Flags.boolean({ description: "brute force over every stored vector instead of the index" }),
  };
  async run(): Promise<void> {
    const { flags } = await this.parse(Search);
    const store = await this.openStore(flags.repo);
    const res = await store.retrieveOnlineDocuments({
      features: splitList(flags.features),
      query: parseJsonList("query", flags.query) as number[],
      topK: flags["top-k"],
      distanceMetric: flags["distance-metric"] as VectorMetric | undefined,
      exclude: flags.exclude === undefined ? undefined : parseJsonList("exclude", flags.exclude),
      filter: flags.filter,
      exact: flags.exact,
    });
    this.log(JSON.stringify(res.toFeastJSON(), null, 2));
  }
}
