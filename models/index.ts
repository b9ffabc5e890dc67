export {
  checkFeatureSpec,
  featureSpecDifference,
  featureSpecsEqual,
  MISSING_CATEGORY,
  OTHER_CATEGORY,
} from './feature-spec.js';
export type { FeatureDef, FeatureKind, FeatureRow, FeatureSpec, FeatureValue, Task } from './feature-spec.js';
export { encodeRows, toCategory, toNumeric } from './encode.js';
export type { ModelOutput } from './model-output.js';
export { DEFAULT_TRAINER_SETTINGS, RELATIVE_STD_FLOOR, trainModel } from './trainer.js';
export type { LinearTrainedModel, LinearTrainerSettings, TrainerSettings, TrainInput } from './trainer.js';
export { DEFAULT_GBDT_SETTINGS, trainGbdtModel } from './gbdt.js';
export type { GbdtSettings, GbdtTrainedModel, GbdtTrainInput } from './gbdt.js';
export { TRAINER_ALGORITHMS, trainBuiltin, trainerChoiceOf } from './builtin-trainer.js';
export type { TrainerAlgorithm, TrainerChoice } from './builtin-trainer.js';
export { CLASS_WEIGHTS } from './trained-model.js';
export type { ClassWeight, TrainedModel, TrainerName } from './trained-model.js';
export { qualityMetrics } from './metrics.js';
export type { QualityMetrics } from './metrics.js';
export { periodicBaseline, periodicBaselineForPipeline } from './periodic-baseline.js';
export type { PeriodicBaselineInput, PeriodicBaselineResult, PeriodicRefit, PeriodicRow, Refit, RowScorer } from './periodic-baseline.js';
export { binIndex, computeBaseline, scoreBin, SCORE_BINS } from './baseline.js';
export type {
  BaselineStats,
  CategoricalBaseline,
  FeatureBaseline,
  NumericBaseline,
  PredictionBaseline,
} from './baseline.js';
export { loadOnnxModel, ModelSpecMismatchError } from './onnx-model.js';
export type { OnnxModel } from './onnx-model.js';
export { readEmbeddedSpec } from './onnx-builder.js';
