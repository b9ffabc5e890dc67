/**
 * Training time of the built-in trainers on a synthetic 2,000-row x 20-input
 * window (16 numeric with 5% missing, 4 categorical with 5 categories), per
 * task: process CPU time (user + system) and wall time, median of `--repeat`
 * runs after one warm-up.
 *
 *   npx tsx study/training-time.ts [--rows 2000] [--repeat 5]
 */
import { trainBuiltin } from '../models/builtin-trainer.js';
import type { TrainerChoice } from '../models/builtin-trainer.js';
import type { FeatureDef, FeatureRow, Task } from '../models/feature-spec.js';
import { randomSource } from '../models/test-support.js';

const arg = (flag: string, fallback: number): number => {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const n = arg('--rows', 2000);
const repeat = arg('--repeat', 5);

const { normal, uniform } = randomSource(9);
const features: FeatureDef[] = Array.from({ length: 20 }, (_, j) => ({ name: `f${j}`, kind: j < 16 ? 'numeric' : 'categorical' }));
const rows: FeatureRow[] = [];
const margins: number[] = [];
for (let i = 0; i < n; i++) {
  const row: FeatureRow = {};
  let margin = 0;
  for (let j = 0; j < 20; j++) {
    if (j < 16) {
      const x = normal();
      row[`f${j}`] = uniform() < 0.05 ? null : x;
      margin += x * ((j % 3) - 1);
    } else {
      const c = Math.floor(uniform() * 5);
      row[`f${j}`] = `c${c}`;
      margin += c === 2 ? 1 : 0;
    }
  }
  rows.push(row);
  margins.push(margin + normal());
}
const labels: Record<Task, Array<string | number>> = {
  binary: margins.map((m) => (m > 0 ? 'yes' : 'no')),
  multiclass: margins.map((m) => (m < -1 ? 'a' : m < 0 ? 'b' : m < 1 ? 'c' : 'd')),
  regression: margins,
};

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
console.log(`| trainer | task | rows x inputs | CPU ms (median of ${repeat}) | wall ms (median) |`);
console.log('|---|---|---|---|---|');
for (const choice of [{ algorithm: 'linear' }, { algorithm: 'gbdt' }] as TrainerChoice[]) {
  for (const task of ['binary', 'multiclass', 'regression'] as Task[]) {
    const input = { spec: { task, features }, rows, labels: labels[task] };
    trainBuiltin(choice, input);
    const cpu: number[] = [];
    const wall: number[] = [];
    for (let r = 0; r < repeat; r++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      trainBuiltin(choice, input);
      wall.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
    }
    console.log(`| ${choice.algorithm} | ${task}${task === 'multiclass' ? ' (4 classes)' : ''} | ${n} x 20 | ${median(cpu).toFixed(0)} | ${median(wall).toFixed(0)} |`);
  }
}
