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
export { DEFAULT_TRAINER_SETTINGS, trainModel } from './trainer.js';
export type { TrainedModel, TrainerSettings, TrainInput } from './trainer.js';
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
