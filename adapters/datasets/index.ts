// Data sets: synthetic Ali-CCP-like and REES46-like generators, the MovieLens loaders, the demo repo's data.
export { generateAliccp, aliccpWorkflow, ALICCP_USER_COLUMNS, ALICCP_ITEM_COLUMNS } from "./aliccp.js";
export type { AliccpOptions, AliccpResult } from "./aliccp.js";
export { generateRees46, rees46SessionWorkflow, rees46ProductId, SESSION_LIST_FEATURES } from "./rees46.js";
export type { Rees46Options, SessionWorkflowOptions } from "./rees46.js";
export { loadMovieLens, sharedDataDir, dataSetDir, projectRoot } from "./movielens.js";
export type { MovieLensResult } from "./movielens.js";
export { prepareDemoData } from "./demo.js";
export type { DemoData, DemoDataOptions } from "./demo.js";
