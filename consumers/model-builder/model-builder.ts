/**
 * model-builder's core: a RetrainRequest becomes a registered candidate.
 *
 * The training set is what the models actually saw: the served feature
 * values joined with ground truth (store/training-set.ts), so it is
 * point-in-time correct by construction. Split by time, never at random: the
 * newest `promotion.holdoutRows` rows before the request's window end are
 * held out for the evaluator; the `trainer.windowRows` rows before them are
 * the training set. With `promotion.refitOnHoldout` two models are fitted at
 * once: the validation model on that window (the evaluator judges it on the
 * held-out rows) and the serving model on the newest rows. Training runs off
 * the event loop (worker threads for the built-in trainer, child processes
 * for an external one) while the builder keeps its group membership and its
 * lease on the request alive.
 *
 * Each request id is built once: the builder claims it under a lease (a
 * second builder waits while the lease is held), a replayed request reuses
 * the model already registered for it, and a request that cannot be trained
 * (too few rows, one class only) is marked skipped with the reason. Requests
 * that queued behind a build and arrive in one chunk are not built one after
 * the other on ever staler labels: only the newest is, and the older ones are
 * marked skipped as superseded.
 *
 * With `live`, each request is trained on the newest applied spec version's
 * inputs (a feature added by `setup --spec` once the preprocessor serves it;
 * rows logged before it was served have it missing, imputed as any missing
 * value, unless the feature history holds it: ./backfill.ts), and the
 * candidate's lineage records that version (`specVersion`).
 */
import crypto from 'node:crypto';
import os from 'node:os';
import type { ModelInfo, ModelRegistry } from '../../models/registry.js';
import { train, TrainingError, type Artifact, type LabeledRow, type TrainOptions } from '../../models/training.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { LiveSpec } from '../live-spec.js';
import type { ModelCandidate, RetrainRequest } from '../../schemas/types.js';
import type { RetrainRequestStore } from '../../store/retrain-requests.js';
import type { FeatureStore } from '../../store/feature-store.js';
import type { TrainingRow, TrainingSet } from '../../store/training-set.js';
import { backfillRows } from './backfill.js';
import type { WorkerImpl } from '../../streams/definition.js';
import type { Logger } from '../../streams/logger.js';
import type { OutputRecord, ProcessContext } from '../../streams/runtime.js';

/** Pure: the time-based split of newest-first rows into holdout (newest) and training (the window before). */
export function splitByTime<T extends { eventTime: number }>(newestFirst: T[], holdoutRows: number, windowRows: number): { holdout: T[]; train: T[] } {
  return { holdout: newestFirst.slice(0, holdoutRows), train: newestFirst.slice(holdoutRows, holdoutRows + windowRows) };
}

export function toCandidate(spec: PipelineSpec, m: ModelInfo, r: RetrainRequest, validation: ModelInfo | null = null): ModelCandidate {
  return {
    validation_version: validation?.version ?? null,
    pipeline: spec.name,
    model_name: m.modelName,
    model_version: m.version,
    request_id: r.request_id,
    trainer: m.trainer,
    training_rows: m.trainingRows,
    window_start: m.trainingStart ?? 0,
    window_end: m.trainingEnd ?? 0,
    metrics: m.metrics,
    sha256: m.sha256,
    created_at: m.createdAt,
  };
}

export interface ModelBuilderDeps {
  spec: PipelineSpec;
  /** The applied spec versions, read before each request: the candidate takes the newest version's inputs and records it in its lineage. */
  live?: LiveSpec;
  registry: ModelRegistry;
  training: Pick<TrainingSet, 'newest'>;
  /** The feature history: inputs a later spec version added are backfilled into older rows from it (./backfill.ts). Absent: no backfill. */
  features?: Pick<FeatureStore, 'history'>;
  requests: RetrainRequestStore;
  logger: Logger;
  /** Fewest training rows worth a model. Default 100. */
  minRows?: number;
  /** A claim on a request lapses this long after its last renewal. Default 30 000 ms. */
  leaseMs?: number;
  trainTimeoutMs?: number;
  /** Trains (default: models/training.ts `train`); tests inject a slow or failing one. */
  trainer?: (spec: PipelineSpec, rows: readonly LabeledRow[], options: TrainOptions) => Promise<Artifact>;
  onBuilt?: (model: ModelInfo, request: RetrainRequest, seconds: number) => void;
}

export function createModelBuilder(deps: ModelBuilderDeps): WorkerImpl<'RetrainRequest'> {
  const { registry, requests, logger } = deps;
  /** The spec version in force for the request in hand (names never change across versions). */
  let spec = deps.spec;
  const minRows = deps.minRows ?? 100;
  const leaseMs = deps.leaseMs ?? 30_000;
  const trainer = deps.trainer ?? train;
  const owner = `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;

  /** Runs `work` while heartbeating the group and renewing the lease every few seconds; aborts it if either is lost. */
  async function keepingAlive<T>(ctx: ProcessContext, requestId: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    const onRevoke = () => abort.abort();
    ctx.signal.addEventListener('abort', onRevoke, { once: true });
    let lost: unknown = null;
    const timer = setInterval(() => {
      void (async () => {
        try {
          await ctx.heartbeat();
          if (!(await requests.renew(spec.name, requestId, owner, leaseMs))) throw new TrainingError(`lost the lease on ${requestId} to another builder`);
        } catch (err) {
          lost = err;
          abort.abort();
        }
      })();
    }, Math.min(3000, leaseMs / 3));
    try {
      const result = await work(abort.signal);
      if (lost) throw lost;
      return result;
    } catch (err) {
      throw lost ?? err;
    } finally {
      clearInterval(timer);
      ctx.signal.removeEventListener('abort', onRevoke);
    }
  }

  const VALIDATION = '#validation';

  async function existing(requestId: string): Promise<ModelInfo | null> {
    return registry.byRequest(spec.name, spec.model.name, requestId);
  }

  type Trained = { artifact: Artifact; seconds: number } | { skipped: string };

  /** Trains on `window` (newest first), keeping the group and the lease alive meanwhile. */
  async function fit(r: RetrainRequest, window: TrainingRow[], ctx: ProcessContext): Promise<Trained> {
    const started = Date.now();
    try {
      const artifact = await keepingAlive(ctx, r.request_id, (signal) => trainer(spec, [...window].reverse(), { signal, ...(deps.trainTimeoutMs ? { timeoutMs: deps.trainTimeoutMs } : {}), log: (m, f) => logger.info(f ?? {}, m) }));
      return { artifact, seconds: (Date.now() - started) / 1000 };
    } catch (err) {
      if (err instanceof TrainingError && !ctx.signal.aborted) return { skipped: `skipped: ${err.message}` };
      throw err;
    }
  }

  /** Registers what `fit` trained on `window` under `requestId`. */
  async function register(r: RetrainRequest, requestId: string, window: TrainingRow[], artifact: Artifact): Promise<ModelInfo> {
    const times = window.map((x) => x.eventTime);
    return registry.register({
      pipeline: spec.name,
      modelName: spec.model.name,
      status: 'candidate',
      ...artifact,
      trainingStart: Math.min(...times),
      trainingEnd: Math.max(...times),
      parentVersion: r.champion_version,
      requestId,
      specVersion: deps.live?.version() ?? null,
    });
  }

  async function build(r: RetrainRequest, ctx: ProcessContext): Promise<{ model: ModelInfo | null; validation: ModelInfo | null; verdict: string }> {
    // The request's model was registered before a restart (the request still building): finish with it, training nothing.
    const registered = await existing(r.request_id);
    if (registered) return { model: registered, validation: await existing(`${r.request_id}${VALIDATION}`), verdict: `built v${registered.version} (registered before a restart)` };
    let rows = await deps.training.newest(spec.name, { limit: spec.promotion.holdoutRows + spec.trainer.windowRows, before: r.window_end + 1 });
    if (deps.features) {
      const b = await backfillRows(spec, rows, deps.features);
      rows = b.rows;
      if (Object.keys(b.filled).length > 0) logger.info({ requestId: r.request_id, filled: b.filled }, 'training rows backfilled from the feature history');
    }
    const { train: window } = splitByTime(rows, spec.promotion.holdoutRows, spec.trainer.windowRows);
    if (window.length < minRows) return { model: null, validation: null, verdict: `skipped: ${window.length} training rows (${rows.length} labeled in all) is under the minimum of ${minRows}` };
    const refit = spec.promotion.refitOnHoldout && rows.length > window.length;
    if (!refit) {
      const trained = await fit(r, window, ctx);
      if ('skipped' in trained) return { model: null, validation: null, verdict: trained.skipped };
      const model = await register(r, r.request_id, window, trained.artifact);
      deps.onBuilt?.(model, r, trained.seconds);
      return { model, validation: null, verdict: `built v${model.version} from ${window.length} rows in ${trained.seconds.toFixed(1)} s (${trained.artifact.trainer})` };
    }
    // The validation model (judged on the held-out rows) and the serving model (refitted on the newest rows) are
    // independent fits: they run at once, one training thread each. The validation model registers first.
    const newest = rows.slice(0, spec.trainer.windowRows);
    const started = Date.now();
    const done = await existing(`${r.request_id}${VALIDATION}`);
    const [validationFit, servingFit] = await Promise.all([done ? null : fit(r, window, ctx), fit(r, newest, ctx)]);
    if (validationFit && 'skipped' in validationFit) return { model: null, validation: null, verdict: validationFit.skipped };
    const validation = done ?? (await register(r, `${r.request_id}${VALIDATION}`, window, validationFit!.artifact));
    await registry.setVerdict(spec.name, spec.model.name, validation.version, `validation model of request ${r.request_id}: judged on the ${spec.promotion.holdoutRows} held-out rows for the refitted model`);
    if ('skipped' in servingFit) return { model: null, validation: null, verdict: servingFit.skipped };
    const serving = await register(r, r.request_id, newest, servingFit.artifact);
    const seconds = (Date.now() - started) / 1000;
    logger.info({ requestId: r.request_id, version: serving.version, validation: validation.version, rows: newest.length, seconds }, 'candidate registered');
    deps.onBuilt?.(serving, r, seconds);
    return {
      model: serving,
      validation,
      verdict: `built v${serving.version} from the newest ${newest.length} rows, validated by v${validation.version} trained on the ${window.length} before the ${spec.promotion.holdoutRows} held out, in ${seconds.toFixed(1)} s (${servingFit.artifact.trainer})`,
    };
  }

  return {
    async open() {
      await deps.live?.open();
      spec = deps.live?.current() ?? deps.spec;
    },
    async process(records, ctx) {
      const outputs: OutputRecord[] = [];
      // Requests that queued while a build ran arrive together: only the newest is built (it has the newest labels);
      // the older ones are finished as skipped, superseded, unless an earlier attempt already built them.
      const newest = records.reduce<RetrainRequest | null>((best, { value: r }) => (r.pipeline === spec.name && (best === null || r.window_end >= best.window_end) ? r : best), null)?.request_id;
      for (const { value: r } of records) {
        if (r.pipeline !== spec.name) continue;
        if (await deps.live?.refresh({ force: true })) spec = deps.live!.current();
        for (;;) {
          const claim = await requests.claim(r, owner, leaseMs);
          if (claim.outcome === 'done') {
            if (claim.status === 'built') {
              const m = await existing(r.request_id);
              if (m) outputs.push({ topic: 'control.candidates', record: 'ModelCandidate', key: spec.name, value: toCandidate(spec, m, r, await existing(`${r.request_id}${VALIDATION}`)) });
            }
            break;
          }
          if (claim.outcome === 'held') {
            // Another builder is on it (a member that lost this partition and has not noticed): wait for it or for its lease to lapse.
            logger.warn({ requestId: r.request_id, owner: claim.owner }, 'another builder holds this request; waiting');
            await new Promise((res) => setTimeout(res, Math.max(200, Math.min(2000, claim.leaseUntil - Date.now()))));
            await ctx.heartbeat();
            continue;
          }
          if (r.request_id !== newest) {
            const verdict = `skipped: superseded by ${newest}, a newer request queued behind it`;
            await requests.finish(spec.name, r.request_id, 'skipped', null, verdict);
            logger.info({ requestId: r.request_id, newest }, 'retrain request superseded by a newer one');
            break;
          }
          const { model, validation, verdict } = await build(r, ctx);
          await requests.finish(spec.name, r.request_id, model ? 'built' : 'skipped', model?.version ?? null, verdict);
          if (!model) {
            logger.warn({ requestId: r.request_id, verdict }, 'retrain request not built');
            break;
          }
          outputs.push({ topic: 'control.candidates', record: 'ModelCandidate', key: spec.name, value: toCandidate(spec, model, r, validation) });
          break;
        }
      }
      return { outputs };
    },
  };
}
