import type { FeatureSpec, FeatureValue, FeatureRow } from './feature-spec.js';

/**
 * Reads a numeric feature value: numbers as-is, numeric strings parsed,
 * anything else (null, undefined, NaN, non-numeric text) → NaN (missing).
 */
export function toNumeric(value: FeatureValue | undefined): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '') return Number(value);
  return Number.NaN;
}

/**
 * Reads a categorical feature value as its category name: strings as-is,
 * finite numbers stringified, null/undefined/NaN → null (missing).
 */
export function toCategory(value: FeatureValue | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' && Number.isNaN(value)) return null;
  return String(value);
}

/**
 * Builds the model input tensor `features` (float32, row-major [rows.length, F],
 * F = spec.features.length, columns in spec order). A numeric column holds the
 * value (NaN = missing); a categorical column holds the index of the value in
 * `categories` (-1 = unknown or missing).
 */
export function encodeRows(spec: FeatureSpec, rows: readonly FeatureRow[]): Float32Array {
  const width = spec.features.length;
  const indexes = spec.features.map((f) =>
    f.kind === 'categorical' ? new Map((f.categories ?? []).map((c, i) => [c, i])) : null,
  );
  const out = new Float32Array(rows.length * width);
  rows.forEach((row, r) => {
    spec.features.forEach((f, c) => {
      const index = indexes[c];
      const value = row[f.name];
      if (index) {
        const category = toCategory(value);
        out[r * width + c] = category === null ? -1 : (index.get(category) ?? -1);
      } else {
        out[r * width + c] = toNumeric(value);
      }
    });
  });
  return out;
}
