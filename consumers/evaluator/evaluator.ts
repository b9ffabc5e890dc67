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
 */
import { LooplineError } from '../../core/errors.js';
import { promote, reject } from '../../models/lifecycle.js';
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
}

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

  return {
    async process(records: Array<InputRecord<ModelCandidate>>) {
      const outputs: OutputRecord[] = [];
      for (const { value: c } of records) {
        if (c.pipeline !== spec.name || c.model_name !== spec.model.name) continue;
        const serving = await registry.serving(spec.name, spec.model.name);
        const info = (await registry.list(spec.name, spec.model.name)).find((m) => m.version === c.model_version);
        if (!info) continue;
        if (serving.champion === c.model_version) {
          // Promoted before a crash: completes the shadow if needed and announces again.
          const event = await promote(registry, { ...change(c, info.verdict ?? 'promoted (replayed announcement)'), version: c.model_version, expected: serving.previous });
          if (event) outputs.push(announce(event));
          continue;
        }
        if (info.status !== 'candidate') continue; // judged before a restart
        if (serving.champion === null) {
          logger.warn({ version: c.model_version }, 'no champion to compare with; promoting the candidate');
        }
        // The judged model: the validation model (trained without the held-out rows) when the candidate was refitted on them.
        const judged = c.validation_version ?? c.model_version;
        const versions = await registry.list(spec.name, spec.model.name);
        const judgedInfo = c.validation_version === null ? info : versions.find((m) => m.version === judged);
        // Rows either model learned from are not held out: a champion refitted recently has seen the
        // older part of the window, and would be judged on its own training rows.
        const championInfo = serving.champion === null ? undefined : versions.find((m) => m.version === serving.champion);
        const trainedUntil = Math.max(judgedInfo?.trainingEnd ?? c.window_end, championInfo?.trainingEnd ?? -Infinity);
        const holdout = (await deps.training.newest(spec.name, { limit: p.holdoutRows })).filter((r) => r.eventTime > trainedUntil);
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
          };
          deps.onEvaluated?.(evaluation);
        }
        const verdict = evaluation
          ? `${p.metric} on ${evaluation.rows} held-out rows: candidate${c.validation_version === null ? '' : ` (validated by v${judged})`} ${evaluation.candidateMetric.toFixed(4)} vs champion ${evaluation.championMetric.toFixed(4)}, difference ${evaluation.meanDiff.toFixed(4)} [${evaluation.lower.toFixed(4)}, ${evaluation.upper.toFixed(4)}] at ${p.confidence}; gate ${p.gate === 'better' ? `better by more than ${p.minImprovement}` : `not worse by more than ${p.tolerance}`}`
          : 'no champion';
        if (c.validation_version !== null) {
          await registry.setStatus(spec.name, spec.model.name, c.validation_version, 'retired');
          await registry.setVerdict(spec.name, spec.model.name, c.validation_version, `validation model of v${c.model_version}: ${verdict}`);
        }
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
