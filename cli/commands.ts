// Every `fs` command, by oclif id ("feature-views:list" is typed `fs feature-views list`).
// oclif loads this map (explicit strategy) so startup does not scan folders.
import type { Command } from "@oclif/core";
import Apply from "./commands/apply.js";
import DataSourcesList from "./commands/data-sources/list.js";
import DatasetsGenerate from "./commands/datasets/generate.js";
import DatasetsMovielens from "./commands/datasets/movielens.js";
import EntitiesList from "./commands/entities/list.js";
import EtlRun from "./commands/etl/run.js";
import FeatureServicesList from "./commands/feature-services/list.js";
import FeatureViewsDescribe from "./commands/feature-views/describe.js";
import FeatureViewsList from "./commands/feature-views/list.js";
import GetHistoricalFeatures from "./commands/get-historical-features.js";
import GetOnlineFeatures from "./commands/get-online-features.js";
import Init from "./commands/init.js";
import Materialize from "./commands/materialize.js";
import MaterializeIncremental from "./commands/materialize-incremental.js";
import Plan from "./commands/plan.js";
import Recommend from "./commands/recommend.js";
import RecommendBatch from "./commands/recommend/batch.js";
import RegistryDump from "./commands/registry-dump.js";
import Search from "./commands/search.js";
import Serve from "./commands/serve.js";
import Teardown from "./commands/teardown.js";
import Train from "./commands/train.js";
import TrainSession from "./commands/train/session.js";
import Version from "./commands/version.js";

export const COMMANDS: Record<string, typeof Command> = {
  apply: Apply,
  "data-sources:list": DataSourcesList,
  "datasets:generate": DatasetsGenerate,
  "datasets:movielens": DatasetsMovielens,
  "entities:list": EntitiesList,
  "etl:run": EtlRun,
  "feature-services:list": FeatureServicesList,
  "feature-views:describe": FeatureViewsDescribe,
  "feature-views:list": FeatureViewsList,
  "get-historical-features": GetHistoricalFeatures,
  "get-online-features": GetOnlineFeatures,
  init: Init,
  materialize: Materialize,
  "materialize-incremental": MaterializeIncremental,
  plan: Plan,
  recommend: Recommend,
  "recommend:batch": RecommendBatch,
  "registry-dump": RegistryDump,
  search: Search,
  serve: Serve,
  teardown: Teardown,
  train: Train,
  "train:session": TrainSession,
  version: Version,
};
