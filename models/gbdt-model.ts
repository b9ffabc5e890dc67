import type { FeatureSpec } from './feature-spec.js';
import { activate } from './linear-model.js';

/**
 * One node of a regression tree over the encoded `features` tensor (see
 * `encodeRows`). Children are indexes into the tree's `nodes`.
 * - `leq` (numeric input): go `left` when x <= threshold, or when x is NaN
 *   (missing) and `missingLeft`; otherwise `right`. ±Infinity compare as numbers.
 * - `eq` (categorical input): go `left` when x equals the category code
 *   `threshold`; every other code, -1 (unknown or missing) and NaN go `right`.
 * - `leaf`: adds `value` to the tree's output score.
 * Thresholds and values are float32-representable, so the ONNX graph and
 * {@link gbdtScores} compare and add the same numbers.
 */
export type GbdtNode =
  | { kind: 'leq'; feature: number; threshold: number; missingLeft: boolean; left: number; right: number }
  | { kind: 'eq'; feature: number; threshold: number; left: number; right: number }
  | { kind: 'leaf'; value: number };

/** A tree adding to output score `target` (0 for binary/regression, the class index for multiclass). Node 0 is the root. */
export interface GbdtTree {
  target: number;
  nodes: GbdtNode[];
}

/**
 * A fitted gradient-boosted ensemble: raw score k of a row = base[k] + the
 * sum of the leaf values its trees with target k reach. Binary: one score,
 * P(classes[1]) = sigmoid(score); multiclass: one score per class, softmax;
 * regression: the score is the prediction.
 */
export interface GbdtModelParams {
  spec: FeatureSpec;
  /** [K] base scores (K = 1 for binary/regression, C for multiclass). */
  base: Float32Array;
  trees: GbdtTree[];
}

/** Raw scores [n, K] (row-major) of an encoded input [n, F]. */
export function gbdtScores(params: GbdtModelParams, encoded: Float32Array, n: number): Float64Array {
  const k = params.base.length;
  const width = params.spec.features.length;
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) out[i * k + c] = params.base[c]!;
  for (const tree of params.trees) {
    const { nodes, target } = tree;
    for (let i = 0; i < n; i++) {
      let node = nodes[0]!;
      while (node.kind !== 'leaf') {
        const x = encoded[i * width + node.feature]!;
        const left = node.kind === 'leq' ? x <= node.threshold || (node.missingLeft && Number.isNaN(x)) : x === node.threshold;
        node = nodes[left ? node.left : node.right]!;
      }
      out[i * k + target] = out[i * k + target]! + node.value;
    }
  }
  return out;
}

/**
 * TS forward pass mirroring the ONNX graph: `probabilities` [n, C] for
 * classification or `value` [n, 1] for regression, row-major.
 */
export function gbdtForward(params: GbdtModelParams, encoded: Float32Array, n: number): Float64Array {
  return activate(params.spec.task, gbdtScores(params, encoded, n), n, params.base.length);
}
