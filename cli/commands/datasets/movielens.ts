import { Flags } from "@oclif/core";
import { FstoreCommand } from "../../base.js";

export default class DatasetsMovielens extends FstoreCommand {
  static override description =
    "Turn the MovieLens latest-small files (from $FSTORE_DATA_DIR/ml-latest-small, or --data-dir) into parquet offline sources: ratings, items, users";
  static override examples = [
    "fs datasets movielens --out data/movielens",
    "fs datasets movielens --data-dir test/fixtures/ml-latest-small --out data/movielens-slice",
  ];
  static override flags = {
    out: Flags.string({ char: "o", required: true, description: "output folder" }),
    "data-dir": Flags.string({
      description:
        "folder holding ratings.csv and movies.csv (default $FSTORE_DATA_DIR/ml-latest-small; FSTORE_DATA_DIR defaults to ../shared/data from the project root)",
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
