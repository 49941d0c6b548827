import { Flags } from "@oclif/core";
import { ValidationError } from "../../common/errors.js";
import { parseFloatText, parseIntText } from "../../common/numbers.js";
import { TIME_TEXT_HELP, parseTimeText } from "../../common/time.js";
import { type ValueType, baseType } from "../../registry/types.js";
import { RepoCommand, splitList } from "../base.js";

export default class GetOnlineFeatures extends RepoCommand {
  static override description = "Read features of some entities from the online store; prints Feast's JSON response";
  static override examples = [
    "fs get-online-features --features user_features:age,user_features:city --entity user_id=1 --entity user_id=2",
  ];
  static override flags = {
    features: Flags.string({
      char: "f",
      multiple: true,
      description: "view:feature references (comma-separated or repeated)",
      exclusive: ["feature-service"],
    }),
    "feature-service": Flags.string({ char: "s", description: "a feature service name" }),
    entity: Flags.string({
      char: "e",
      multiple: true,
      required: true,
      description: `join key value, KEY=VALUE; repeat for more rows (composite keys: user_id=1,item_id=5). Integer keys take plain decimal integers within their type's range (no 0x10 or 1e1), bool keys true or false, timestamp keys ${TIME_TEXT_HELP}`,
    }),
    "full-feature-names": Flags.boolean({ description: "name features view__feature" }),
  };
  async run(): Promise<void> {
    const { flags } = await this.parse(GetOnlineFeatures);
    const store = await this.openStore(flags.repo);
    const features = flags["feature-service"] ?? splitList(flags.features);
    if (Array.isArray(features) && features.length === 0)
      throw new ValidationError("give --features view:feature,... or --feature-service NAME");
    // Join-key values arrive as text: type them as the registry declares the key.
    const keyTypes = new Map(
      store.listFeatureViews().flatMap((v) => v.entityColumns.map((c) => [c.name, baseType(c.dtype)] as const)),
    );
    const rows = flags.entity.map((spec) => {
      const row: Record<string, unknown> = {};
      for (const part of spec.split(",")) {
        const eq = part.indexOf("=");
        if (eq <= 0) throw new ValidationError(`--entity "${spec}": expected KEY=VALUE (e.g. user_id=1)`);
        const key = part.slice(0, eq).trim();
        const raw = part.slice(eq + 1).trim();
        row[key] = entityValue(raw, keyTypes.get(key), `--entity "${spec}": join key "${key}"`);
      }
      return row;
    });
    const names = new Set(rows.flatMap((r) => Object.keys(r)));
    for (const r of rows)
      for (const n of names)
        if (!(n in r)) throw new ValidationError(`--entity: every row needs the same keys; a row lacks "${n}"`);
    const res = await store.getOnlineFeatures({
      features,
      entityRows: rows,
      fullFeatureNames: flags["full-feature-names"],
    });
    this.log(JSON.stringify(res.toFeastJSON(), null, 2));
  }
}

/** A join-key value typed as the registry declares the key; text that is not plainly of that type is refused. */
function entityValue(raw: string, type: ValueType | undefined, what: string): unknown {
  switch (type) {
    case "int32":
    case "int64":
      return parseIntText(raw, type, what);
    case "float32":
    case "float64":
      return parseFloatText(raw, what);
    case "bool":
      if (raw === "true" || raw === "false") return raw === "true";
      throw new ValidationError(`${what}: ${JSON.stringify(raw.slice(0, 60))} is not true or false`);
    case "unix_timestamp":
      return parseTimeText(raw, what);
    default:
      return raw;
  }
}
