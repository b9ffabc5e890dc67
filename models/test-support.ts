import type { FeatureRow, FeatureSpec } from './feature-spec.js';
import type { TrainInput } from './trainer.js';

/** Seeded standard-normal and uniform generators for synthetic test data. */
export function randomSource(seed: number): { uniform: () => number; normal: () => number } {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

const COLOUR_EFFECT: Record<string, number> = { red: 1.5, green: 0, blue: -1.5 };

/** Binary data: y = [2·x1 − x2 + colour effect + noise > 0]; ~5% of x1 missing. */
export function binaryData(n: number, seed = 1): TrainInput {
  const { uniform, normal } = randomSource(seed);
  const rows: FeatureRow[] = [];
  const labels: string[] = [];
  const colours = Object.keys(COLOUR_EFFECT);
  for (let i = 0; i < n; i++) {
    const x1 = normal();
    const x2 = normal();
    const colour = colours[Math.floor(uniform() * colours.length)] ?? 'red';
    const margin = 2 * x1 - x2 + (COLOUR_EFFECT[colour] ?? 0) + 0.3 * normal();
    rows.push({ x1: uniform() < 0.05 ? null : x1, x2, colour });
    labels.push(margin > 0 ? 'yes' : 'no');
  }
  return {
    spec: {
      task: 'binary',
      features: [
        { name: 'x1', kind: 'numeric' },
        { name: 'x2', kind: 'numeric' },
        { name: 'colour', kind: 'categorical' },
      ],
    },
    rows,
    labels,
  };
}

/** Three unit-variance gaussian blobs centred at (0,0), (4,0), (0,4), labelled a/b/c. */
export function blobData(n: number, seed = 2): TrainInput {
  const { normal } = randomSource(seed);
  const centres: Array<[string, number, number]> = [['a', 0, 0], ['b', 4, 0], ['c', 0, 4]];
  const rows: FeatureRow[] = [];
  const labels: string[] = [];
  for (let i = 0; i < n; i++) {
    const [label, cx, cy] = centres[i % 3] ?? ['a', 0, 0];
    rows.push({ x: cx + normal(), y: cy + normal() });
    labels.push(label);
  }
  return {
    spec: { task: 'multiclass', features: [{ name: 'x', kind: 'numeric' }, { name: 'y', kind: 'numeric' }] },
    rows,
    labels,
  };
}

/** Regression data: y = 2·x1 − 3·x2 + N(0, noise²), x ~ N(0, 1). */
export function regressionData(n: number, noise: number, seed = 3): TrainInput {
  const { normal } = randomSource(seed);
  const rows: FeatureRow[] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const x1 = normal();
    const x2 = normal();
    rows.push({ x1, x2 });
    labels.push(2 * x1 - 3 * x2 + noise * normal());
  }
  return {
    spec: { task: 'regression', features: [{ name: 'x1', kind: 'numeric' }, { name: 'x2', kind: 'numeric' }] },
    rows,
    labels,
  };
}

/** A complete spec for quick tests. */
export const SMALL_SPEC: FeatureSpec = {
  task: 'binary',
  features: [
    { name: 'age', kind: 'numeric' },
    { name: 'plan', kind: 'categorical', categories: ['free', 'pro'] },
  ],
  classes: ['no', 'yes'],
};
