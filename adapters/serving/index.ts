// Serving pipelines: the runtime behind `store.recommend`, `POST /recommend` and `fs recommend`. Importing this
// module registers it with the FeatureStore facade (stores/ cannot import adapters/), which then delegates
// recommend calls and the apply-time pipeline checks to it.

import { ValidationError, errorMessage } from "../../common/errors.js";
import { pipelineIn } from "../../registry/types.js";
import { registerServingExtension } from "../../stores/serving.js";
import { checkModelLoads, readModelMeta } from "./models.js";
import { recommenderFor } from "./recommender.js";
import { typePipeline } from "./typing.js";

registerServingExtension({
  async checkPlan(desired, store) {
    for (const spec of desired.pipelines) {
      const file = desired.origin.get(`pipeline:${spec.name}`) ?? "repo";
      try {
        const typed = await typePipeline(
          pipelineIn(spec, store.config.repoPath),
          { ...desired, project: store.project },
          readModelMeta,
        );
        for (const s of typed.stages) {
          if (s.spec.kind !== "query_tower" && s.spec.kind !== "rank") continue;
          try {
            await checkModelLoads(s.spec.model, s.spec.kind === "rank" ? "dlrm" : "query-tower");
          } catch (e) {
            throw new ValidationError(`pipeline "${spec.name}" stage "${s.spec.name}": ${errorMessage(e)}`, {
              cause: e,
            });
          }
        }
      } catch (e) {
        if (e instanceof ValidationError) throw new ValidationError(`${file}: ${e.message}`, { cause: e });
        throw e;
      }
    }
  },
  open: recommenderFor,
});

export { Recommender, recommenderFor, MAX_TOP_K, type ServingListener, type RecommendOptions } from "./recommender.js";
export { exactCandidates, annCandidates } from "./model_stages.js";
export { Prng, orderCandidates } from "./ordering.js";
export { RUNNERS, initialState, runPipeline, DEFAULT_TOP_K, type RunInput, type RunOutput } from "./runner.js";
export type { CandidateSource, RunContext, PipelineState } from "./context.js";
export type { Candidates, RequestRows } from "./batch.js";
export { typePipeline, type TypedPipeline, type TypedStage, QUERY_EMBEDDING, SCORE } from "./typing.js";
export {
  recommendBatch,
  DEFAULT_BLOCK_SIZE,
  type BatchRecommendOptions,
  type BatchRecommendReport,
} from "./batch_recommend.js";
export { blockedTopK, blockedExactCandidates, type ItemMatrix, type TopK } from "./exact_retrieval.js";
