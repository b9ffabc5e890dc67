/**
 * scorer's core: feature vectors are scored in batches by the serving model
 * (onnxruntime-node, one session.run per chunk); each served prediction goes
 * to the `predictions` topic, every prediction (shadow included) to the
 * joiner's `predictions.by-event` and to the prediction log. Optional variants: an A/B arm
 * serves a share of events (chosen by a hash of the event id, so a replay
 * picks the same arm), and a shadow model scores every event side by side,
 * logged with variant "shadow" but never served.
 *
 * Each prediction records in `model_features` the inputs its own model took
 * (beside `features`, everything the preprocessor served).
 *
 * Hot swap: `reload()` reads the serving state from the registry and loads
 * any new version; the swap takes effect between chunks, so every event is
 * scored by exactly one champion and no chunk is half old, half new. Each model
 * is given exactly the inputs its feature spec names (a model may use fewer
 * than the pipeline serves); a model that needs an input the pipeline does
 * not serve, or of another kind, is refused at load, not discovered per event,
 * and the current one keeps serving. A candidate announced on
 * control.candidates is loaded ahead (`preload`), so its promotion swaps in
 * without a registry read; versions that no longer serve are unloaded. With
 * `live`, every reload first reads the
 * applied spec versions: a new one (a feature added by `setup --spec`) takes
 * effect with the models built under it, so a model trained on the new
 * feature is accepted once the spec serving it is applied.
 */
import crypto from 'node:crypto';
import { LooplineError, TransientError } from '../../core/errors.js';
import { pipelineFitProblem } from '../../models/feature-spec.js';
import { estimateSetting } from '../drift-monitor/estimate-core.js';
import type { LiveSpec } from '../live-spec.js';
import { loadOnnxModel, type OnnxModel } from '../../models/onnx-model.js';
import type { ModelOutput } from '../../models/model-output.js';
import type { ModelRegistry, ServingState } from '../../models/registry.js';
import { inputKinds, modelFeatureDefs, type PipelineSpec } from '../../pipelines/spec.js';
import { checkValue } from '../../pipelines/validate.js';
import type { FeatureVector, Prediction } from '../../schemas/types.js';
import type { PredictionLog } from '../../store/prediction-log.js';
import type { WorkerImpl } from '../../streams/definition.js';
import type { Logger } from '../../streams/logger.js';
import type { InputRecord, OutputRecord, RecordFailure } from '../../streams/runtime.js';

/** No model serves yet: retried (events wait) until one is promoted, within the retry budget. */
export class NoChampionError extends TransientError {
  constructor(pipeline: string, model: string) {
    super(`pipeline ${pipeline} has no champion for model ${model}; train and promote one first (loopline train)`, undefined, 'NO_CHAMPION');
  }
}

/** A model the scorer will not serve (it does not fit the pipeline, or its bytes are broken). */
export class ModelRefusedError extends LooplineError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'MODEL_REFUSED', retriable: false, cause });
  }
}

export interface ScorerDeps {
  spec: PipelineSpec;
  /** The applied spec versions, re-read on every reload (consumers/live-spec.ts). Absent: `spec` for good. */
  live?: LiveSpec;
  registry: ModelRegistry;
  log: PredictionLog;
  logger: Logger;
  now?: () => number;
  /** Called after each swap of the serving set, for metrics. */
  onSwap?: (serving: Serving) => void;
}

interface Loaded {
  version: number;
  model: OnnxModel;
  /** The inputs the model takes, in order (its feature spec): what each of its predictions records it saw. */
  features: string[];
}

export interface Serving {
  champion: Loaded;
  shadow: Loaded | null;
  ab: (Loaded & { share: number }) | null;
}

export interface Scorer extends WorkerImpl<'FeatureVector'> {
  /** Re-reads the serving state; loads and swaps in changed versions. Returns the champion version. */
  reload(): Promise<number>;
  /**
   * Loads a version that may serve soon (a candidate announced on control.candidates) so that its promotion
   * swaps it in without a registry read or a session to create. A version that cannot load is left for
   * reload() to refuse.
   */
  preload(version: number): Promise<void>;
  serving(): { champion: number | null; shadow: number | null; ab: number | null };
  /** Versions this scorer refused to load (they do not fit the pipeline, or their bytes are broken). */
  refused(): number[];
}

/** Which arm serves an event: a stable hash of its id against the A/B share. */
export function abArm(eventId: string, share: number): 'ab' | 'champion' {
  if (share <= 0) return 'champion';
  const h = crypto.createHash('sha1').update(eventId).digest().readUInt32BE(0) / 0x1_0000_0000;
  return h < share ? 'ab' : 'champion';
}

export function predictionId(eventId: string, model: string, version: number, variant: string): string {
  return `${eventId}/${model}@${version}/${variant}`;
}

/** Pure: a Prediction record from a model output. */
export function toPrediction(
  v: FeatureVector,
  out: ModelOutput,
  m: { name: string; version: number; variant: string; classes: string[]; features: readonly string[] },
  scoredAt: number,
): Prediction {
  const probabilities: Record<string, number> = {};
  if (out.probabilities) m.classes.forEach((c, i) => (probabilities[c] = out.probabilities![i]!));
  return {
    prediction_id: predictionId(v.event_id, m.name, m.version, m.variant),
    event_id: v.event_id,
    pipeline: v.pipeline,
    entity_id: v.entity_id,
    model_name: m.name,
    model_version: m.version,
    variant: m.variant,
    label: out.label,
    score: out.score,
    probabilities,
    value: out.value,
    features: v.values,
    // An input the model takes that the vector does not carry at all (served under an older spec version) was missing to it.
    missing: [...v.missing, ...m.features.filter((f) => !(f in v.values))],
    model_features: [...m.features],
    event_time: v.event_time,
    produced_at: v.produced_at,
    scored_at: scoredAt,
  };
}

export function createScorer(deps: ScorerDeps): Scorer {
  const { registry, log, logger } = deps;
  const now = deps.now ?? Date.now;
  const modelName = deps.spec.model.name;
  /** What the spec version in force serves: a model must fit it to load. */
  const shapeOf = (spec: PipelineSpec) => ({
    spec,
    expected: modelFeatureDefs(spec),
    byModel: estimateSetting(spec).config !== null,
    served: [...inputKinds(spec)].map(([name, kind]) => ({ name, kind })),
  });
  let shape = shapeOf(deps.spec);
  const spec = deps.spec; // names only (pipeline, model): a spec version never changes them
  const cache = new Map<number, Promise<Loaded>>();
  const refusedVersions = new Set<number>();
  let current: Serving | null = null;
  /** The spec version `current` was built under: one for the whole chunk, with the models. */
  let currentShape = shape;
  let reloading: Promise<number> | null = null;
  /** Candidates preloaded, newest last: kept loaded until a reload finds them neither serving nor among the newest PRELOADS_KEPT. */
  const preloaded: number[] = [];
  const PRELOADS_KEPT = 2;

  /** Unloads versions that neither serve nor wait as a recent preload; a chunk scoring with one finishes first (closed a minute later). */
  function prune(serving: Serving): void {
    const keep = new Set([serving.champion.version, serving.shadow?.version, serving.ab?.version, ...preloaded.slice(-PRELOADS_KEPT)]);
    for (const [version, p] of cache) {
      if (keep.has(version)) continue;
      cache.delete(version);
      setTimeout(() => void p.then((l) => l.model.close()).catch(() => {}), 60_000).unref();
    }
  }

  function load(version: number): Promise<Loaded> {
    let p = cache.get(version);
    if (!p) {
      p = (async () => {
        const mv = await registry.get(spec.name, modelName, version);
        const problem = pipelineFitProblem(shape.served, { task: shape.spec.task, classes: shape.spec.label.classes }, mv.spec);
        if (problem) throw new ModelRefusedError(`refusing ${modelName}@${version}: it does not fit pipeline ${spec.name}: ${problem}`);
        try {
          return { version, model: await loadOnnxModel(mv.onnx, mv.spec), features: mv.spec.features.map((f) => f.name) };
        } catch (err) {
          throw new ModelRefusedError(`refusing ${modelName}@${version}: onnxruntime cannot load it: ${(err as Error).message}`, err);
        }
      })();
      p.catch((err: unknown) => {
        cache.delete(version);
        if (err instanceof ModelRefusedError) refusedVersions.add(version);
      });
      cache.set(version, p);
    }
    return p;
  }

  async function build(state: ServingState): Promise<Serving> {
    if (state.champion === null) throw new NoChampionError(spec.name, modelName);
    let champion: Loaded;
    try {
      champion = await load(state.champion);
    } catch (err) {
      if (current && err instanceof LooplineError && !err.retriable) {
        logger.error({ err, version: state.champion }, 'new champion refused; the current one keeps serving');
        champion = current.champion;
      } else throw err;
    }
    const optional = async (version: number | null): Promise<Loaded | null> => {
      if (version === null) return null;
      try {
        return await load(version);
      } catch (err) {
        logger.error({ err, version }, 'variant model refused; scoring without it');
        return null;
      }
    };
    const shadow = await optional(state.shadow);
    const ab = await optional(state.ab);
    return { champion, shadow, ab: ab ? { ...ab, share: state.abShare } : null };
  }

  async function score(l: Loaded, variant: string, vectors: FeatureVector[], scoredAt: number): Promise<Prediction[]> {
    if (vectors.length === 0) return [];
    const outs = await l.model.predict(vectors.map((v) => v.values));
    return vectors.map((v, i) => toPrediction(v, outs[i]!, { name: modelName, version: l.version, variant, classes: l.model.spec.classes, features: l.features }, scoredAt));
  }

  const scorer: Scorer = {
    async open() {
      await deps.live?.open();
      if (deps.live) shape = currentShape = shapeOf(deps.live.current());
      await scorer.reload();
    },

    reload() {
      reloading ??= (async () => {
        try {
          if (await deps.live?.refresh({ force: true })) {
            // A new spec version: models refused under the old one (needing an input it did not serve) may fit now.
            shape = shapeOf(deps.live!.current());
            refusedVersions.clear();
          }
          const next = await build(await registry.serving(spec.name, modelName));
          const changed = !current || next.champion.version !== current.champion.version || next.shadow?.version !== current.shadow?.version || next.ab?.version !== current.ab?.version || next.ab?.share !== current.ab?.share;
          current = next;
          currentShape = shape;
          prune(next);
          if (changed) {
            logger.info({ champion: next.champion.version, shadow: next.shadow?.version ?? null, ab: next.ab?.version ?? null }, 'serving models swapped in');
            deps.onSwap?.(next);
          }
          return next.champion.version;
        } finally {
          reloading = null;
        }
      })();
      return reloading;
    },

    async preload(version) {
      if (cache.has(version) || refusedVersions.has(version)) return;
      preloaded.push(version);
      if (preloaded.length > PRELOADS_KEPT) preloaded.shift();
      await load(version).then(
        () => logger.debug({ version }, 'candidate preloaded'),
        (err: unknown) => logger.debug({ err, version }, 'candidate not preloaded; a reload will try again'),
      );
    },

    serving: () => ({ champion: current?.champion.version ?? null, shadow: current?.shadow?.version ?? null, ab: current?.ab?.version ?? null }),
    refused: () => [...refusedVersions],

    async process(records: Array<InputRecord<FeatureVector>>) {
      const serving = current; // one snapshot for the whole chunk
      const { expected, byModel } = currentShape;
      if (!serving) throw new NoChampionError(spec.name, modelName);
      const deadLetters: RecordFailure[] = [];
      const champ: FeatureVector[] = [];
      const arm: FeatureVector[] = [];
      const everyone: FeatureVector[] = [];
      records.forEach((r, index) => {
        for (const f of expected) {
          const problem = checkValue(f.name, f.kind, r.value.values[f.name]);
          if (problem) {
            deadLetters.push({ index, stage: 'VALIDATION', ...problem });
            return;
          }
        }
        everyone.push(r.value);
        (serving.ab && abArm(r.value.event_id, serving.ab.share) === 'ab' ? arm : champ).push(r.value);
      });
      const scoredAt = now();
      // The models run at once (each onnxruntime session runs off the event loop).
      const [byChampion, byAb, shadow] = await Promise.all([
        score(serving.champion, 'champion', champ, scoredAt),
        serving.ab ? score(serving.ab, 'ab', arm, scoredAt) : [],
        serving.shadow ? score(serving.shadow, 'shadow', everyone, scoredAt) : [],
      ]);
      const servedPredictions = [...byChampion, ...byAb];
      const all = [...servedPredictions, ...shadow];
      await log.write(all);
      const outputs: OutputRecord[] = [
        ...servedPredictions.map((p): OutputRecord => ({ topic: 'predictions', record: 'Prediction', key: p.entity_id, value: p })),
        ...all.map((p): OutputRecord => ({ topic: 'predictions.by-event', record: 'Prediction', key: p.event_id, value: p })),
        // The drift monitor's estimate before labels: keyed by model, as predictions.labeled (same partition).
        ...(byModel ? all.map((p): OutputRecord => ({ topic: 'predictions.by-model', record: 'Prediction', key: `${p.pipeline}/${p.model_name}`, value: p })) : []),
      ];
      return { outputs, deadLetters };
    },

    async close() {
      for (const p of cache.values()) await p.then((l) => l.model.close()).catch(() => {});
      cache.clear();
    },
  };
  return scorer;
}
