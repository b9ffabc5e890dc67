/**
 * evaluator's core: contender against champion, then promote or reject.
 *
 * Both models score the same held-out window: the newest labeled rows after
 * the candidate's training window and the champion's (a time-based split; the
 * builder never trains on them, and a champion is never judged on rows it
 * learned from), with the feature values that were served live. Per row
 * the promotion metric gives a score (accuracy: 1 if correct; log loss: minus
 * the row's log loss; MAE/RMSE: minus the absolute error); a paired bootstrap
 * interval of the mean difference (candidate − champion) at the spec's
 * confidence must lie above `promotion.minImprovement` for a promotion.
 *
 * A promotion goes through models/lifecycle.ts: a compare-and-set on the
 * registry (it fails if the champion changed meanwhile), after which the old
 * champion keeps scoring as shadow so the retrain trigger can roll back a
 * champion that does worse live. The PROMOTE ModelEvent goes to control.models
 * in the worker's transaction. Every verdict, with its numbers, is stored on
 * the candidate; a candidate that cannot be loaded is rejected with the reason.
 *
 * Staged rollout (promotion.rollout; by default for a candidate trained on
 * another spec version than the champion's): a candidate that passes is not
 * promoted but set as shadow, by compare-and-set on the champion it was judged
 * against, announced with SHADOW_START; its verdict starts `rollout: shadow
 * stage`. It takes the shadow slot from the old champion the rollback guard
 * watched (that guard lapses; the champion keeps serving). One change of what
 * serves at a time: while a rollout runs (a shadow or A/B arm newer than the
 * champion), every other candidate is rejected with that reason, so frequent
 * retrains cannot starve a rollout (the trigger ends a stalled one). The
 * retrain trigger moves it on: A/B, then promotion, or rejection.
 */
import { LooplineError } from '../../core/errors.js';
import { modelInputs, promote, reject, rolloutCandidate, rolloutNeeded, startShadowStage } from '../../models/lifecycle.js';
import { loadOnnxModel, type OnnxModel } from '../../models/onnx-model.js';
import type { ModelOutput } from '../../models/model-output.js';
import type { ModelRegistry } from '../../models/registry.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { ModelCandidate } from '../../schemas/types.js';
import { bootstrapDiffCI } from '../../stats/bootstrap.js';
import type { TrainingSet } from '../../store/training-set.js';
import type { WorkerImpl } from '../../streams/definition.js';
import type { Logger } from '../../streams/logger.js';
import type { InputRecord, OutputRecord } from '../../streams/runtime.js';

/** A candidate the evaluator cannot score (its ONNX does not load or does not fit). */
export class CandidateUnusableError extends LooplineError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'CANDIDATE_UNUSABLE', retriable: false, cause });
  }
}

export interface Evaluation {
  candidate: number;
  champion: number;
  rows: number;
  metric: string;
  candidateMetric: number;
  championMetric: number;
  meanDiff: number;
  lower: number;
  upper: number;
  promote: boolean;
  /** Passed, and staged (promotion.rollout) instead of promoted: it now shadows the champion. */
  rollout: boolean;
}

/** The cause in the ids of a candidate's rollout events from the evaluator (`…/shadow_start/v7-rollout`). */
export const rolloutCause = (version: number): string => `v${version}-rollout`;

/** Pure: the per-row score of a prediction under the promotion metric (higher is better). */
export function rowScore(metric: string, out: ModelOutput, truth: string | number, classes: string[]): number {
  switch (metric) {
    case 'accuracy':
    case 'auc': // per-row AUC does not exist; accuracy stands in for the paired test
      return out.label === String(truth) ? 1 : 0;
    case 'log_loss': {
      const i = classes.indexOf(String(truth));
      const p = out.probabilities?.[i] ?? 0;
      return Math.log(Math.min(Math.max(p, 1e-15), 1 - 1e-15));
    }
    case 'mae':
    case 'rmse':
      return -Math.abs((out.value ?? Number.NaN) - Number(truth));
    default:
      throw new LooplineError(`unknown promotion metric ${metric}`, { code: 'BAD_METRIC', retriable: false });
  }
}

/**
 * Pure: the promotion gate on the paired interval of (candidate − champion), in
 * the metric's better direction: `better` needs the lower bound above
 * minImprovement; `not-worse` refuses only a candidate whose upper bound is
 * below −tolerance (clearly worse).
 */
export function gatePasses(p: Pick<PipelineSpec['promotion'], 'gate' | 'minImprovement' | 'tolerance'>, ci: { lower: number; upper: number } | null): boolean {
  if (ci === null) return false;
  return p.gate === 'better' ? ci.lower > p.minImprovement : ci.upper >= -p.tolerance;
}

export interface EvaluatorDeps {
  spec: PipelineSpec;
  registry: ModelRegistry;
  training: Pick<TrainingSet, 'newest'>;
  logger: Logger;
  onEvaluated?: (e: Evaluation) => void;
}

export function createEvaluator(deps: EvaluatorDeps): WorkerImpl<'ModelCandidate'> {
  const { spec, registry, logger } = deps;
  const p = spec.promotion;

  async function scores(version: number, rows: Array<{ values: Record<string, number | string | null>; label: string | number }>): Promise<number[]> {
    const mv = await registry.get(spec.name, spec.model.name, version);
    let model: OnnxModel | null = null;
    try {
      try {
        model = await loadOnnxModel(mv.onnx, mv.spec);
      } catch (err) {
        throw new CandidateUnusableError(`v${version} cannot be loaded: ${(err as Error).message}`, err);
      }
      const outs = await model.predict(rows.map((r) => r.values));
      return outs.map((o, i) => rowScore(p.metric, o, rows[i]!.label, mv.spec.classes));
    } finally {
      await model?.close();
    }
  }

  const change = (c: ModelCandidate, reason: string) => ({ pipeline: spec.name, modelName: spec.model.name, actor: 'evaluator', reason, at: c.created_at });
  const announce = (event: import('../../schemas/types.js').ModelEvent): OutputRecord => ({ topic: 'control.models', record: 'ModelEvent', key: `${spec.name}/${spec.model.name}`, value: event });

  const specName = (v: number | null) => (v === null ? 'unversioned' : `v${v}`);

  return {
    async process(records: Array<InputRecord<ModelCandidate>>) {
      const outputs: OutputRecord[] = [];
      for (const { value: c } of records) {
        if (c.pipeline !== spec.name || c.model_name !== spec.model.name) continue;
        const [serving, info] = await Promise.all([registry.serving(spec.name, spec.model.name), registry.info(spec.name, spec.model.name, c.model_version)]);
        if (!info) continue;
        if (serving.champion === c.model_version) {
          // Promoted before a crash: completes the shadow if needed and announces again.
          const event = await promote(registry, { ...change(c, info.verdict ?? 'promoted (replayed announcement)'), version: c.model_version, expected: serving.previous });
          if (event) outputs.push(announce(event));
          continue;
        }
        if (serving.champion !== null && serving.shadow === c.model_version && info.status === 'shadow' && info.verdict?.startsWith('rollout: ')) {
          // Staged before a crash: announces the shadow stage again (the trigger moves it on from there).
          const event = await startShadowStage(registry, { ...change(c, info.verdict), cause: rolloutCause(c.model_version), version: c.model_version, expected: serving.champion });
          if (event) outputs.push(announce(event));
          continue;
        }
        if (info.status !== 'candidate') continue; // judged before a restart
        const inRollout = rolloutCandidate(serving);
        if (inRollout !== null && inRollout !== c.model_version) {
          const verdict = `rejected: v${inRollout}'s staged rollout is in progress (one change of what serves at a time)`;
          logger.info({ version: c.model_version, rollout: inRollout }, verdict);
          if (c.validation_version !== null) {
            await registry.setStatus(spec.name, spec.model.name, c.validation_version, 'retired');
            await registry.setVerdict(spec.name, spec.model.name, c.validation_version, `validation model of v${c.model_version}: ${verdict}`);
          }
          await reject(registry, { ...change(c, verdict), version: c.model_version });
          continue;
        }
        if (serving.champion === null) {
          logger.warn({ version: c.model_version }, 'no champion to compare with; promoting the candidate');
        }
        // The judged model: the validation model (trained without the held-out rows) when the candidate was refitted on them.
        const judged = c.validation_version ?? c.model_version;
        const [judgedInfo, championInfo, newest] = await Promise.all([
          c.validation_version === null ? info : registry.info(spec.name, spec.model.name, judged),
          serving.champion === null ? null : registry.info(spec.name, spec.model.name, serving.champion),
          deps.training.newest(spec.name, { limit: p.holdoutRows }),
        ]);
        // Rows either model learned from are not held out: a champion refitted recently has seen the
        // older part of the window, and would be judged on its own training rows.
        const trainedUntil = Math.max(judgedInfo?.trainingEnd ?? c.window_end, championInfo?.trainingEnd ?? -Infinity);
        const holdout = newest.filter((r) => r.eventTime > trainedUntil);
        if (serving.champion !== null && holdout.length < 30) {
          const verdict = `rejected: the held-out window has ${holdout.length} rows, too few to judge`;
          logger.warn({ version: c.model_version, rows: holdout.length }, verdict);
          await reject(registry, { ...change(c, verdict), version: c.model_version });
          continue;
        }
        let evaluation: Evaluation | null = null;
        if (serving.champion !== null) {
          let cand: number[];
          let champ: number[];
          try {
            [cand, champ] = await Promise.all([scores(judged, holdout), scores(serving.champion, holdout)]);
          } catch (err) {
            if (!(err instanceof CandidateUnusableError)) throw err;
            const verdict = `rejected: ${err.message}`;
            logger.error({ version: c.model_version, verdict }, 'candidate unusable');
            await reject(registry, { ...change(c, verdict), version: c.model_version });
            continue;
          }
          const ci = bootstrapDiffCI(cand, champ, { confidence: p.confidence, iterations: 1000, seed: judged });
          const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
          evaluation = {
            candidate: c.model_version,
            champion: serving.champion,
            rows: holdout.length,
            metric: p.metric,
            candidateMetric: mean(cand),
            championMetric: mean(champ),
            meanDiff: ci?.meanDiff ?? 0,
            lower: ci?.lower ?? 0,
            upper: ci?.upper ?? 0,
            promote: gatePasses(p, ci),
            rollout: false,
          };
        }
        const verdict = evaluation
          ? `${p.metric} on ${evaluation.rows} held-out rows: candidate${c.validation_version === null ? '' : ` (validated by v${judged})`} ${evaluation.candidateMetric.toFixed(4)} vs champion ${evaluation.championMetric.toFixed(4)}, difference ${evaluation.meanDiff.toFixed(4)} [${evaluation.lower.toFixed(4)}, ${evaluation.upper.toFixed(4)}] at ${p.confidence}; gate ${p.gate === 'better' ? `better by more than ${p.minImprovement}` : `not worse by more than ${p.tolerance}`}`
          : 'no champion';
        if (c.validation_version !== null) {
          await Promise.all([
            registry.setStatus(spec.name, spec.model.name, c.validation_version, 'retired'),
            registry.setVerdict(spec.name, spec.model.name, c.validation_version, `validation model of v${c.model_version}: ${verdict}`),
          ]);
        }
        if (evaluation && evaluation.promote && rolloutNeeded(p.rollout, modelInputs(info), championInfo ? modelInputs(championInfo) : undefined)) {
          // Staged rollout: it shadows the champion on live traffic; the retrain trigger moves it to A/B, then promotes or rejects it.
          const r = p.rollout;
          const stage = `rollout: shadow stage (spec ${specName(info.specVersion)} vs the champion's ${specName(championInfo?.specVersion ?? null)}; ${r.shadowWindows} window(s) as shadow, then ${r.abWindows} as A/B arm at ${r.abShare}); offline: ${verdict}`;
          const event = await startShadowStage(registry, { ...change(c, stage), cause: rolloutCause(c.model_version), version: c.model_version, expected: evaluation.champion });
          if (!event) {
            logger.warn({ version: c.model_version }, 'champion changed during evaluation; candidate left for a later judgement');
            continue;
          }
          deps.onEvaluated?.({ ...evaluation, rollout: true });
          logger.info({ version: c.model_version, champion: evaluation.champion, verdict: stage }, 'candidate staged: shadow');
          outputs.push(announce(event));
          continue;
        }
        if (evaluation) deps.onEvaluated?.(evaluation);
        if (evaluation && !evaluation.promote) {
          logger.info({ version: c.model_version, verdict }, 'candidate rejected');
          await reject(registry, { ...change(c, `rejected: ${verdict}`), version: c.model_version });
          continue;
        }
        const event = await promote(registry, { ...change(c, `promoted: ${verdict}`), version: c.model_version, expected: serving.champion });
        if (!event) {
          logger.warn({ version: c.model_version }, 'champion changed during evaluation; candidate left for a later judgement');
          continue;
        }
        logger.info({ version: c.model_version, previous: serving.champion, verdict }, 'candidate promoted');
        outputs.push(announce(event));
      }
      return { outputs };
    },
  };
}
