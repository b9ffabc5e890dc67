/**
 * One training path for every caller (the bootstrap, the model builder, the
 * demo's periodic yardstick): `train(spec, rows)` → an artifact ready to
 * register, with the built-in trainer or the spec's external command.
 *
 * - Built-in (`trainer.kind: builtin`): the TypeScript trainer, run on a
 *   worker thread (`offThread`, the default in workers; two threads where
 *   there are two cores) so a long fit never blocks the event loop that
 *   heartbeats, fetches and scores for every other worker of the process.
 * - Command (`trainer.kind: command`): any program that reads the training set
 *   as CSV and writes `model.onnx` and `metrics.json` (trainers/README.md); it
 *   runs as a child process, killed when `signal` aborts or after `timeoutMs`
 *   (default 30 minutes). The model it writes is loaded with onnxruntime and
 *   refused unless it takes the pipeline's inputs.
 *
 *   const artifact = await train(spec, rows, { signal, logger });
 *   await registry.register({ pipeline, modelName, status: 'candidate', ...artifact, ...lineage });
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { FatalError, LooplineError } from '../core/errors.js';
import { modelFeatureDefs, type PipelineSpec } from '../pipelines/spec.js';
import { computeBaseline, type BaselineStats } from './baseline.js';
import type { FeatureRow, FeatureSpec } from './feature-spec.js';
import { loadOnnxModel } from './onnx-model.js';
import { trainForPipeline } from './pipeline-training.js';
import { artifactOf } from './registry.js';

/** A labeled row to learn from: the served feature values and the ground truth. */
export interface LabeledRow {
  values: FeatureRow;
  label: string | number;
}

/** What a trainer produces: the registry's artifact fields. */
export interface Artifact {
  onnx: Uint8Array;
  spec: FeatureSpec;
  baseline: BaselineStats;
  metrics: Record<string, number>;
  trainer: string;
  trainerSettings: Record<string, unknown>;
  trainingRows: number;
}

export interface TrainOptions {
  signal?: AbortSignal;
  /** Run the built-in trainer on a worker thread. Default true. */
  offThread?: boolean;
  /** Longest an external trainer may run. Default 30 minutes. */
  timeoutMs?: number;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** A training run that cannot succeed with these rows (too few, one class only): the request is skipped, not retried. */
export class TrainingError extends LooplineError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'TRAINING_FAILED', retriable: false, cause });
  }
}

/** Pure and synchronous: the built-in trainer on the calling thread. */
export function trainInProcess(spec: PipelineSpec, rows: readonly LabeledRow[]): Artifact {
  return artifactOf(trainForPipeline(spec, rows.map((r) => r.values), rows.map((r) => r.label)));
}

export async function train(spec: PipelineSpec, rows: readonly LabeledRow[], options: TrainOptions = {}): Promise<Artifact> {
  if (rows.length === 0) throw new TrainingError('no labeled rows to train on');
  if (spec.trainer.kind === 'command') return trainExternal(spec, rows, options);
  if (options.offThread === false) {
    try {
      return trainInProcess(spec, rows);
    } catch (err) {
      throw new TrainingError(`built-in trainer: ${(err as Error).message}`, err);
    }
  }
  return trainingThreads().run(spec, rows, options.signal);
}

// ------------------------------------------------------------ worker threads

interface ThreadJob {
  id: number;
  spec: PipelineSpec;
  rows: readonly LabeledRow[];
  resolve: (a: Artifact) => void;
  reject: (e: unknown) => void;
}

/** One training thread: idle (no job), or fitting one job. Its Worker starts with its first job and after a crash or an abort. */
interface ThreadSlot {
  worker: Worker | null;
  job: ThreadJob | null;
}

/**
 * Training threads per process: two where there are two cores, so the model
 * builder fits a request's validation and serving models at once; more jobs
 * queue. Each thread lives as long as the process (JIT-warm for the next fit).
 */
export const TRAINING_THREADS = Math.max(1, Math.min(2, os.availableParallelism()));

let threads: { run(spec: PipelineSpec, rows: readonly LabeledRow[], signal?: AbortSignal): Promise<Artifact> } | null = null;

function trainingThreads() {
  if (threads) return threads;
  let next = 1;
  const slots: ThreadSlot[] = Array.from({ length: TRAINING_THREADS }, () => ({ worker: null, job: null }));
  const queue: ThreadJob[] = [];
  const start = (slot: ThreadSlot): Worker => {
    const w = new Worker(new URL('./training-thread.mjs', import.meta.url));
    w.on('message', (m: { id: number; ok: boolean; artifact?: Artifact; error?: string }) => {
      const job = slot.job;
      if (!job || job.id !== m.id) return;
      slot.job = null;
      if (m.ok) job.resolve({ ...m.artifact!, onnx: new Uint8Array(m.artifact!.onnx) });
      else job.reject(new TrainingError(`built-in trainer: ${m.error}`));
      dispatch();
    });
    w.on('error', (err) => {
      if (slot.worker !== w) return;
      const job = slot.job;
      slot.job = null;
      slot.worker = null;
      job?.reject(new TrainingError(`training thread failed: ${err.message}`, err));
      dispatch();
    });
    w.on('exit', () => {
      if (slot.worker === w) slot.worker = null;
    });
    return w;
  };
  // A thread holds the process open while it fits (its caller awaits the result) and never when idle:
  // an idle ref'd thread would keep a finished process alive.
  const dispatch = () => {
    for (const slot of slots) {
      if (!slot.job && queue.length > 0) {
        const job = queue.shift()!;
        slot.job = job;
        slot.worker ??= start(slot);
        slot.worker.postMessage({ id: job.id, spec: job.spec, rows: job.rows });
      }
      if (slot.job) slot.worker?.ref();
      else slot.worker?.unref();
    }
  };
  threads = {
    run(spec, rows, signal) {
      return new Promise<Artifact>((resolve, reject) => {
        const job: ThreadJob = { id: next++, spec, rows, resolve, reject };
        signal?.addEventListener('abort', () => {
          const queued = queue.indexOf(job);
          if (queued >= 0) queue.splice(queued, 1);
          const slot = slots.find((x) => x.job === job);
          if (queued < 0 && !slot) return;
          reject(new TrainingError('training aborted'));
          if (slot) {
            // A thread cannot be interrupted mid-fit; a fresh one serves later jobs.
            slot.job = null;
            void slot.worker?.terminate();
            slot.worker = null;
          }
          dispatch();
        }, { once: true });
        queue.push(job);
        dispatch();
      });
    },
  };
  return threads;
}

// ------------------------------------------------------------ external command

/** A CSV field: quoted when it holds a comma, quote, CR or LF. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** Runs the spec's external trainer on a CSV of the rows (oldest first) and checks what it wrote. */
export async function trainExternal(spec: PipelineSpec, rows: readonly LabeledRow[], options: TrainOptions = {}): Promise<Artifact> {
  const features = modelFeatureDefs(spec);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopline-train-'));
  try {
    const csvFile = path.join(dir, 'train.csv');
    const lines = [[...features.map((f) => f.name), 'label'].map(csvField).join(',')];
    for (const r of rows) lines.push([...features.map((f) => csvField(r.values[f.name])), csvField(r.label)].join(','));
    fs.writeFileSync(csvFile, lines.join('\n') + '\n');
    const specFile = path.join(dir, 'spec.json');
    const featureSpec: FeatureSpec = { task: spec.task, features, classes: spec.label.classes };
    fs.writeFileSync(specFile, JSON.stringify(featureSpec));
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const argv = spec.trainer.command!.map((a) => a.replaceAll('{train}', csvFile).replaceAll('{out}', out).replaceAll('{spec}', specFile));
    options.log?.('running external trainer', { argv });
    await new Promise<void>((resolve, reject) => {
      const child = execFile(argv[0]!, argv.slice(1), { timeout: options.timeoutMs ?? 30 * 60_000, maxBuffer: 16 * 1024 * 1024, signal: options.signal }, (err, _stdout, stderr) => {
        if (!err) return resolve();
        if ((err as { code?: string }).code === 'ENOENT') return reject(new FatalError(`external trainer ${argv[0]} does not exist (trainer.command)`, 'TRAINER_NOT_FOUND', err));
        if (options.signal?.aborted) return reject(new TrainingError('external trainer aborted', err));
        reject(new TrainingError(`external trainer ${argv[0]} failed: ${String(stderr).slice(-1000) || (err as Error).message}`, err));
      });
      child.stdin?.end();
    });
    let onnx: Uint8Array;
    let metrics: Record<string, number>;
    try {
      onnx = new Uint8Array(fs.readFileSync(path.join(out, 'model.onnx')));
      metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')) as Record<string, number>;
    } catch (err) {
      throw new TrainingError(`external trainer ${argv[0]} did not write model.onnx and metrics.json: ${(err as Error).message}`, err);
    }
    let model;
    try {
      model = await loadOnnxModel(onnx, featureSpec); // refuses a model that does not take our inputs
    } catch (err) {
      throw new TrainingError(`the model written by ${argv[0]} does not fit the pipeline: ${(err as Error).message}`, err);
    }
    try {
      const values = rows.map((r) => r.values);
      const baseline = computeBaseline(featureSpec, values, await model.predict(values));
      return { onnx, spec: featureSpec, baseline, metrics, trainer: `command:${path.basename(argv[0]!)}`, trainerSettings: { command: spec.trainer.command }, trainingRows: rows.length };
    } finally {
      await model.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

