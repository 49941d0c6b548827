import { Flags } from "@oclif/core";
import { ValidationError } from "../../common/errors.js";
import { RepoCommand } from "../base.js";

export default class Recommend extends RepoCommand {
  static override description =
    "Run a registered serving pipeline for some entity rows; prints the recommendations as JSON (the same answer as POST /recommend)";
  static override examples = [
    "fs recommend --pipeline recommender -e user_id=1",
    "fs recommend --pipeline recommender -e user_id=1 -e user_id=2 --top-k 10 --seed 7 --debug",
  ];
  static override flags = {
    pipeline: Flags.string({ char: "p", required: true, description: "the pipeline's name (fs plan lists them)" }),
    entity: Flags.string({
      char: "e",
      multiple: true,
      required: true,
      description: "the pipeline entity's join key, KEY=VALUE; repeat for more rows",
    }),
    "top-k": Flags.integer({ char: "k", min: 1, description: "items per row (default: the pipeline's Order topK)" }),
    seed: Flags.integer({ description: "the same seed gives the same lists (softmax ordering); none draws fresh" }),
    debug: Flags.boolean({ description: "add each stage's candidates, counts and timing" }),
  };
  async run(): Promise<void> {
    const { flags } = await this.parse(Recommend);
    const store = await this.openStore(flags.repo);
    const contents = store.contents();
    const spec = contents.pipelines.find((p) => p.name === flags.pipeline);
    const entity = spec && contents.entities.find((e) => e.name === spec.entity);
    // an unknown pipeline is reported by recommend itself, with the known names
    const key = entity?.joinKeys[0];
    const numeric = entity
      ? ["int32", "int64", "float32", "float64", "unix_timestamp"].includes(entity.valueType)
      : false;
    const keys = flags.entity.map((e) => {
      const eq = e.indexOf("=");
      if (eq <= 0) throw new ValidationError(`--entity "${e}": expected KEY=VALUE (e.g. ${key ?? "user_id"}=1)`);
      const name = e.slice(0, eq).trim();
      const raw = e.slice(eq + 1).trim();
      if (key && name !== key)
        throw new ValidationError(`--entity "${e}": pipeline "${flags.pipeline}" is keyed by "${key}", not "${name}"`);
      if (!numeric) return { name, value: raw };
      const n = Number(raw);
      if (raw === "" || !Number.isFinite(n))
        throw new ValidationError(
          `--entity "${e}": join key "${name}" is ${entity?.valueType} but "${raw}" is not a number`,
        );
      return { name, value: n };
    });
    const names = new Set(keys.map((k) => k.name));
    if (names.size > 1)
      throw new ValidationError(`--entity: every row needs the same key; got ${[...names].join(", ")}`);
    const res = await store.recommend({
      pipeline: flags.pipeline,
      entities: { [keys[0].name]: keys.map((k) => k.value) },
      topK: flags["top-k"],
      seed: flags.seed,
      debug: flags.debug,
    });
    this.log(JSON.stringify(res, null, 2));
  }
}
