/**
 * Pure statistics for the drift monitor, the retrain trigger and the
 * evaluator (including performance estimation before labels: cbpe.ts,
 * calibration.ts). No I/O; every stateful object snapshots to plain JSON
 * (`toJSON()` / `fromJSON()`) and restores exactly.
 *
 * Shared conventions: malformed arguments throw RangeError; a metric or test
 * that is undefined for the data at hand (e.g. empty input) is null.
 */
export * from './bootstrap.js';
export * from './calibration.js';
export * from './cbpe.js';
export * from './detectors.js';
export * from './drift.js';
export * from './quality.js';
export * from './random.js';
export * from './special.js';
