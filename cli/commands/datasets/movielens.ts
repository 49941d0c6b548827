import { Flags } from "@oclif/core";
import { FstoreCommand } from "../../base.js";

export default class DatasetsMovielens extends FstoreCommand {
  static override description =
    "Turn the MovieLens latest-small files (../shared/data/ml-latest-small) into parquet offline sources: ratings, items, users";
  static override examples = ["fs datasets movielens --out data/movielens"];
  static override flags = {
    out: Flags.string({ char: "o", required: true, description: "output folder" }),
    "data-dir": Flags.string({
      description:
        "folder holding ratings.csv and movies.csv (default ../shared/data/ml-latest-small from the project root, or $FSTORE_DATA_DIR/ml-latest-small)",
    }),
  };
  async run(): Promise<void> {
    const { loadMovieLens } = await import("../../../adapters/datasets/index.js");
    const { flags } = await this.parse(DatasetsMovielens);
    const r = await loadMovieLens(flags.out, { dataDir: flags["data-dir"] });
    this.log(
      `movielens: ${r.counts.ratings} ratings, ${r.counts.items} items, ${r.counts.users} users -> ${r.ratings}, ${r.items}, ${r.users}`,
    );
  }
}
