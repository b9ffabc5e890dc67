// The external trainer contract with the bundled scikit-learn example: the
// builder writes the training set, runs the command, and accepts the ONNX
// model only if onnxruntime loads it with Loopline's inputs and outputs.
// Runs where the example's Python environment exists (.ci/run creates it).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadOnnxModel } from './onnx-model.js';
import { loadSpec, type PipelineSpec } from '../pipelines/spec.js';
import { readCsv } from '../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../producers/replay-plan.js';
import { trainExternal } from './training.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const python = path.join(root, '.infra', 'py', 'bin', 'python');
const hasSklearn = fs.existsSync(python) && fs.readdirSync(path.join(root, '.infra', 'py', 'lib')).some((v) => fs.existsSync(path.join(root, '.infra', 'py', 'lib', v, 'site-packages', 'skl2onnx')));

describe.runIf(hasSklearn)('external trainer (scikit-learn example)', () => {
  it('trains, converts to ONNX with preprocessing inside, and scores like scikit-learn did', async () => {
    const { spec: base, dir } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
    const spec: PipelineSpec = { ...base, trainer: { ...base.trainer, kind: 'command', command: [python, path.join(root, 'trainers', 'sklearn', 'train.py'), '{train}', '{spec}', '{out}'] } };
    const rows = pointInTimeRows(spec, buildReplayPlan(spec, readCsv(path.join(dir, spec.replay!.csv)), { limit: 3000 }))
      .filter((r) => r.label !== null)
      .map((r) => ({ values: r.values, label: r.label! }));
    const t = await trainExternal(spec, rows);
    expect(t.trainer).toBe('command:python');
    expect(t.metrics.accuracy).toBeGreaterThan(0.7);
    const model = await loadOnnxModel(t.onnx, t.spec);
    const out = await model.predict(rows.map((r) => r.values));
    await model.close();
    const acc = out.filter((o, i) => o.label === rows[i]!.label).length / rows.length;
    expect(Math.abs(acc - t.metrics.accuracy!)).toBeLessThan(0.005); // the ONNX graph reproduces the sklearn pipeline
    expect(out.every((o) => Number.isFinite(o.score))).toBe(true);
  }, 120_000);
});
