/**
 * One entry point for the built-in trainers: the algorithm is data (a
 * pipeline spec's `trainer.algorithm`), the settings are that algorithm's.
 */
import { trainModel } from './trainer.js';
import type { TrainerSettings } from './trainer.js';
import { trainGbdtModel } from './gbdt.js';
import type { GbdtSettings } from './gbdt.js';
import type { TrainInput, TrainedModel } from './trained-model.js';
import type { TrainerSpec } from '../pipelines/spec.js';

/** The built-in algorithms. */
export const TRAINER_ALGORITHMS = ['linear', 'gbdt'] as const;
export type TrainerAlgorithm = (typeof TRAINER_ALGORITHMS)[number];

/**
 * Which built-in trainer to run and its settings (omitted settings take the
 * trainer's defaults): `linear` = logistic / softmax / linear regression
 * (`trainModel`), `gbdt` = gradient-boosted trees (`trainGbdtModel`).
 */
export type TrainerChoice =
  | { algorithm: 'linear'; settings?: TrainerSettings }
  | { algorithm: 'gbdt'; settings?: GbdtSettings };

/** Trains with the chosen built-in algorithm; `trainer.name` of the result is `builtin-<algorithm>`. */
export function trainBuiltin(choice: TrainerChoice, input: Omit<TrainInput, 'settings'>): TrainedModel {
  return choice.algorithm === 'gbdt'
    ? trainGbdtModel({ ...input, settings: choice.settings ?? {} })
    : trainModel({ ...input, settings: choice.settings ?? {} });
}

/** The built-in trainer a pipeline's `trainer` section names (its `algorithm` and `settings`). */
export function trainerChoiceOf(trainer: TrainerSpec): TrainerChoice {
  return trainer.algorithm === 'gbdt' ? { algorithm: 'gbdt', settings: trainer.settings } : { algorithm: 'linear', settings: trainer.settings };
}
