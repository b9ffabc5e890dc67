/** The training thread's job loop: fits with the built-in trainer and posts the artifact back. */
import { parentPort } from 'node:worker_threads';
import type { PipelineSpec } from '../pipelines/spec.js';
import { trainInProcess, type LabeledRow } from './training.js';

parentPort!.on('message', (job: { id: number; spec: PipelineSpec; rows: LabeledRow[] }) => {
  try {
    const artifact = trainInProcess(job.spec, job.rows);
    parentPort!.postMessage({ id: job.id, ok: true, artifact });
  } catch (err) {
    parentPort!.postMessage({ id: job.id, ok: false, error: (err as Error).message });
  }
});
