/**
 * Sequential change detectors for a model's error stream: 0/1 misclassification
 * indicators or absolute errors, one value per labelled prediction. Both
 * detectors are deterministic and snapshot their complete state as plain JSON,
 * so a detector restored with `fromJSON(toJSON())` continues exactly as the
 * original would.
 */

/** Which direction of change Page-Hinkley reacts to. */
export type ChangeDirection = 'up' | 'down' | 'both';

/** Options of `PageHinkley`. */
export interface PageHinkleyOptions {
  /** Magnitude of change tolerated without alarm, in units of x. Default 0.02. */
  delta?: number;
  /** Alarm threshold λ on the cumulative deviation, in units of x. Default 50. */
  lambda?: number;
  /**
   * Fading factor applied to the cumulative sums at every step. Default 1 (no
   * fading): with α < 1 the sums become a stationary process whose excursions
   * eventually exceed λ, i.e. false alarms on long stationary streams.
   */
  alpha?: number;
  /** No alarm before this many values since the last reset. Default 30. */
  minInstances?: number;
  /** 'up' (default) alarms on increases of the mean only, i.e. on a growing error. */
  direction?: ChangeDirection;
}

/** The complete, JSON-serialisable state of a `PageHinkley` detector. */
export interface PageHinkleyState {
  kind: 'page-hinkley';
  delta: number;
  lambda: number;
  alpha: number;
  minInstances: number;
  direction: ChangeDirection;
  n: number;
  mean: number;
  sumUp: number;
  minUp: number;
  sumDown: number;
  maxDown: number;
}

function finiteInput(name: string, x: number): number {
  if (!Number.isFinite(x)) throw new RangeError(`${name}.update: x must be finite, got ${x}`);
  return x;
}

/**
 * Page-Hinkley test (Page 1954; Mouss et al. 2004; as in river). With x̄_t the
 * running mean since the last reset, it tracks
 *   m_t = α·m_{t−1} + (x_t − x̄_t − δ)  (increase)   and alarms when m_t − min_{s≤t} m_s > λ,
 *   d_t = α·d_{t−1} + (x_t − x̄_t + δ)  (decrease)   and alarms when max_{s≤t} d_s − d_t > λ,
 * taking m_0 = d_0 = 0 as the initial extremum. After an alarm the detector
 * resets itself, so the next value starts a fresh reference period.
 * The defaults are tuned for 0/1 error streams (simulated, 300 seeds × 20,000
 * values): a jump from 10 % to 50 % error is caught after ~140 values (max
 * ~190), 10 % → 20 % after ~860; no false alarm at a stationary 5–20 % error
 * rate, ~1 % of streams at 30–50 %. River's defaults (δ = 0.005, α = 0.9999)
 * alarm on half of such stationary streams.
 */
export class PageHinkley {
  #s: PageHinkleyState;

  /** Throws RangeError for delta < 0, lambda ≤ 0, alpha ∉ (0, 1] or minInstances < 1. */
  constructor(options: PageHinkleyOptions = {}) {
    const { delta = 0.02, lambda = 50, alpha = 1, minInstances = 30, direction = 'up' } = options;
    if (!(delta >= 0) || !(lambda > 0) || !(alpha > 0 && alpha <= 1) || !(minInstances >= 1)) {
      throw new RangeError('PageHinkley: need delta >= 0, lambda > 0, 0 < alpha <= 1, minInstances >= 1');
    }
    this.#s = { kind: 'page-hinkley', delta, lambda, alpha, minInstances, direction, ...PageHinkley.#fresh() };
  }

  static #fresh(): Pick<PageHinkleyState, 'n' | 'mean' | 'sumUp' | 'minUp' | 'sumDown' | 'maxDown'> {
    return { n: 0, mean: 0, sumUp: 0, minUp: 0, sumDown: 0, maxDown: 0 };
  }

  /** Restores a detector from `toJSON()` output. Throws RangeError on a foreign state. */
  static fromJSON(state: PageHinkleyState): PageHinkley {
    if (state.kind !== 'page-hinkley') throw new RangeError(`PageHinkley.fromJSON: unexpected kind ${String(state.kind)}`);
    const d = new PageHinkley(state);
    d.#s = { ...state };
    return d;
  }

  /** A copy of the state; `JSON.stringify` of it is lossless. */
  toJSON(): PageHinkleyState {
    return { ...this.#s };
  }

  /** Values seen since the last reset (or alarm). */
  get n(): number {
    return this.#s.n;
  }

  /** Mean of the values seen since the last reset (or alarm); 0 before any. */
  get mean(): number {
    return this.#s.mean;
  }

  /** Feeds one value; true when a change is detected at this value (the detector then resets). Throws RangeError on a non-finite x. */
  update(x: number): boolean {
    finiteInput('PageHinkley', x);
    const s = this.#s;
    s.n++;
    s.mean += (x - s.mean) / s.n;
    const deviation = x - s.mean;
    s.sumUp = s.alpha * s.sumUp + deviation - s.delta;
    s.sumDown = s.alpha * s.sumDown + deviation + s.delta;
    s.minUp = Math.min(s.minUp, s.sumUp);
    s.maxDown = Math.max(s.maxDown, s.sumDown);
    if (s.n < s.minInstances) return false;
    const up = s.direction !== 'down' && s.sumUp - s.minUp > s.lambda;
    const down = s.direction !== 'up' && s.maxDown - s.sumDown > s.lambda;
    if (up || down) this.reset();
    return up || down;
  }

  /** Forgets all values seen; keeps the options. */
  reset(): void {
    Object.assign(this.#s, PageHinkley.#fresh());
  }
}

/** Options of `Adwin`. */
export interface AdwinOptions {
  /** Confidence parameter δ of the cut test; smaller = fewer false alarms, slower detection. Default 0.002. */
  delta?: number;
  /** The cut test runs every `clock` values. Default 32. */
  clock?: number;
  /** Buckets per exponential-histogram row before two are merged (M). Default 5. */
  maxBuckets?: number;
  /** Both sub-windows must hold more than `minSubWindow + 1` values for a cut. Default 5. */
  minSubWindow?: number;
  /** No cut test while the window holds `gracePeriod` values or fewer. Default 10. */
  gracePeriod?: number;
}

/**
 * One row of the exponential histogram: buckets of 2^row values each,
 * oldest first, as parallel arrays of their sums and variance sums (Σ(x − mean)²).
 */
export interface BucketRow {
  totals: number[];
  variances: number[];
}

/** The complete, JSON-serialisable state of an `Adwin` detector. */
export interface AdwinState {
  kind: 'adwin';
  delta: number;
  clock: number;
  maxBuckets: number;
  minSubWindow: number;
  gracePeriod: number;
  /** rows[0] holds single values (newest data); higher rows hold older, larger buckets. */
  rows: BucketRow[];
  width: number;
  total: number;
  /** Σ(x − mean)² over the window. */
  variance: number;
  tick: number;
  detections: number;
}

/**
 * ADWIN2 (Bifet & Gavaldà, "Learning from time-changing data with adaptive
 * windowing", SDM 2007), following the reference MOA implementation that
 * river ports: the window is compressed into an exponential histogram with at
 * most `maxBuckets` buckets per size 2^i (O(M·log W) memory); every `clock`
 * values every bucket boundary is tried as a cut W = W0·W1, and while some cut
 * satisfies |μ̂0 − μ̂1| > ε_cut = √(2·m·σ̂²·ln(2·ln W/δ)) + (2/3)·m·ln(2·ln W/δ),
 * with m = 1/(n0 − M' + 1) + 1/(n1 − M' + 1) (M' = minSubWindow) and σ̂² the
 * window variance, the oldest bucket is dropped. Reacts to increases and
 * decreases of the mean. The bound assumes values in [0, 1]; scale absolute
 * errors accordingly.
 */
export class Adwin {
  #s: AdwinState;

  /** Throws RangeError for delta ∉ (0, 1) or non-positive integer clock/maxBuckets, negative minSubWindow/gracePeriod. */
  constructor(options: AdwinOptions = {}) {
    const { delta = 0.002, clock = 32, maxBuckets = 5, minSubWindow = 5, gracePeriod = 10 } = options;
    if (!(delta > 0 && delta < 1) || !Number.isInteger(clock) || clock < 1 || !Number.isInteger(maxBuckets) || maxBuckets < 1) {
      throw new RangeError('Adwin: need 0 < delta < 1 and positive integer clock and maxBuckets');
    }
    if (!(minSubWindow >= 0) || !(gracePeriod >= 0)) throw new RangeError('Adwin: minSubWindow and gracePeriod must be >= 0');
    this.#s = { kind: 'adwin', delta, clock, maxBuckets, minSubWindow, gracePeriod, ...Adwin.#fresh() };
  }

  static #fresh(): Pick<AdwinState, 'rows' | 'width' | 'total' | 'variance' | 'tick' | 'detections'> {
    return { rows: [{ totals: [], variances: [] }], width: 0, total: 0, variance: 0, tick: 0, detections: 0 };
  }

  /** Restores a detector from `toJSON()` output (deep-copied). Throws RangeError on a foreign state. */
  static fromJSON(state: AdwinState): Adwin {
    if (state.kind !== 'adwin') throw new RangeError(`Adwin.fromJSON: unexpected kind ${String(state.kind)}`);
    const d = new Adwin(state);
    d.#s = structuredClone(state);
    return d;
  }

  /** A deep copy of the state; `JSON.stringify` of it is lossless. */
  toJSON(key?: string): AdwinState {
    return key === undefined ? structuredClone(this.#s) : this.#s;
  }

  /** Number of values in the current window. */
  get width(): number {
    return this.#s.width;
  }

  /** Mean of the current window (0 when empty). */
  get estimation(): number {
    return this.#s.width > 0 ? this.#s.total / this.#s.width : 0;
  }

  /** Variance of the current window (population variance; 0 when empty). */
  get variance(): number {
    return this.#s.width > 0 ? this.#s.variance / this.#s.width : 0;
  }

  /** Changes detected since construction or the last `reset()`. */
  get detections(): number {
    return this.#s.detections;
  }

  /**
   * Adds one value; true when a change is detected at this value (the window
   * has then been shrunk to its most recent part; no reset is needed).
   * Throws RangeError on a non-finite x.
   */
  update(x: number): boolean {
    finiteInput('Adwin', x);
    this.#insert(x);
    const s = this.#s;
    s.tick++;
    if (s.tick % s.clock !== 0 || s.width <= s.gracePeriod) return false;
    let changed = false;
    while (this.#cutOnce()) changed = true;
    if (changed) s.detections++;
    return changed;
  }

  /** Empties the window and the detection count; keeps the options. */
  reset(): void {
    Object.assign(this.#s, Adwin.#fresh());
  }

  #insert(x: number): void {
    const s = this.#s;
    s.width++;
    if (s.width > 1) {
      const previousMean = s.total / (s.width - 1);
      s.variance += ((s.width - 1) * (x - previousMean) ** 2) / s.width;
    }
    s.total += x;
    const head = s.rows[0] as BucketRow;
    head.totals.push(x);
    head.variances.push(0);
    this.#compress();
  }

  /** Merges the two oldest buckets of every overfull row into the next row. */
  #compress(): void {
    const s = this.#s;
    for (let i = 0; ; i++) {
      const row = s.rows[i] as BucketRow;
      if (row.totals.length <= s.maxBuckets) return;
      if (s.rows.length === i + 1) s.rows.push({ totals: [], variances: [] });
      const next = s.rows[i + 1] as BucketRow;
      const size = 2 ** i;
      const [t1 = 0, t2 = 0] = row.totals.splice(0, 2);
      const [v1 = 0, v2 = 0] = row.variances.splice(0, 2);
      next.totals.push(t1 + t2);
      next.variances.push(v1 + v2 + (size / 2) * (t1 / size - t2 / size) ** 2); // n1·n2/(n1+n2)·(μ1 − μ2)²
    }
  }

  /**
   * Scans cuts from the oldest bucket towards the newest; on the first cut
   * that fails the equal-means test, drops the oldest bucket and returns true.
   */
  #cutOnce(): boolean {
    const s = this.#s;
    let n0 = 0;
    let n1 = s.width;
    let u0 = 0;
    let u1 = s.total;
    for (let i = s.rows.length - 1; i >= 0; i--) {
      const row = s.rows[i] as BucketRow;
      const size = 2 ** i;
      for (let k = 0; k < row.totals.length; k++) {
        const t = row.totals[k] ?? 0;
        n0 += size;
        n1 -= size;
        u0 += t;
        u1 -= t;
        if (i === 0 && k === row.totals.length - 1) return false; // W1 would be empty
        if (n0 > s.minSubWindow + 1 && n1 > s.minSubWindow + 1 && this.#cutDiffers(n0, n1, u0 / n0 - u1 / n1)) {
          this.#dropOldest();
          return true;
        }
      }
    }
    return false;
  }

  #cutDiffers(n0: number, n1: number, meanDiff: number): boolean {
    const s = this.#s;
    const dd = Math.log((2 * Math.log(s.width)) / s.delta);
    const m = 1 / (n0 - s.minSubWindow + 1) + 1 / (n1 - s.minSubWindow + 1);
    const windowVariance = Math.max(0, s.variance / s.width); // rounding can push it below 0
    const epsilon = Math.sqrt(2 * m * windowVariance * dd) + (2 / 3) * dd * m;
    return Math.abs(meanDiff) > epsilon;
  }

  #dropOldest(): void {
    const s = this.#s;
    const last = s.rows.length - 1;
    const row = s.rows[last] as BucketRow;
    const size = 2 ** last;
    const total = row.totals.shift() ?? 0;
    const variance = row.variances.shift() ?? 0;
    s.width -= size;
    s.total -= total;
    const bucketMean = total / size;
    const windowMean = s.total / s.width;
    s.variance -= variance + ((size * s.width) / (size + s.width)) * (bucketMean - windowMean) ** 2;
    if (row.totals.length === 0 && last > 0) s.rows.pop();
  }
}
