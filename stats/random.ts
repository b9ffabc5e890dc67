/**
 * Seeded pseudo-random numbers for the statistics module (reservoir sampling,
 * bootstrap resampling, tests). Mulberry32: 32 bits of state, period 2^32,
 * fast and good enough for statistical resampling (not for cryptography).
 */

/**
 * Mulberry32 generator. Its whole state is one unsigned 32-bit integer
 * (`state`), so a generator restored with `Mulberry32.fromState(g.state)`
 * produces exactly the same sequence as `g` from that point on.
 */
export class Mulberry32 {
  #state: number;

  /** `seed` is reduced to an unsigned 32-bit integer (`seed >>> 0`); non-integers are truncated. */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Restores a generator from a previously read `state`. */
  static fromState(state: number): Mulberry32 {
    return new Mulberry32(state);
  }

  /** The current state: an unsigned 32-bit integer, JSON-safe. */
  get state(): number {
    return this.#state;
  }

  /** Next uniform double in [0, 1) (32 bits of randomness). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). `n` must be a positive integer ≤ 2^32 (throws RangeError otherwise). */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) {
      throw new RangeError(`nextInt: n must be an integer in [1, 2^32], got ${n}`);
    }
    return Math.floor(this.next() * n);
  }
}
