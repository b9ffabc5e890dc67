/**
 * Backoff for retriable failures, with a budget. A task that keeps failing
 * transiently backs off (initialMs, doubling with jitter up to maxMs); once
 * it has failed without a success for longer than `budgetMs`, the runtime
 * stops retrying and reports the worker failed, so a supervisor restarts it
 * or a human looks, instead of the worker retrying an outage it cannot see
 * the end of while `/healthz` stays green.
 */
export interface RetryPolicy {
  /** First backoff. Default 10 ms: most transient Kafka answers (CONCURRENT_TRANSACTIONS) clear within milliseconds. */
  initialMs: number;
  /** Longest backoff. Default 5 000 ms. */
  maxMs: number;
  /** Failing without a success for this long exhausts the budget. Default 300 000 ms (5 minutes). */
  budgetMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { initialMs: 10, maxMs: 5000, budgetMs: 300_000 };

/** Pure: the backoff before attempt `attempt` (1 = the first retry), with ±20% jitter from `random`. */
export function backoffMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Tracks one task's failure streak against the budget. */
export class RetryState {
  private failingSince: number | null = null;
  attempt = 0;
  constructor(private readonly policy: RetryPolicy, private readonly now: () => number = Date.now) {}

  /** Records a failure; returns the backoff to wait, or null when the budget is spent. */
  failed(): number | null {
    const t = this.now();
    this.failingSince ??= t;
    this.attempt++;
    if (t - this.failingSince > this.policy.budgetMs) return null;
    return backoffMs(this.policy, this.attempt);
  }

  succeeded(): void {
    this.failingSince = null;
    this.attempt = 0;
  }

  /** ms spent failing so far (0 when the last attempt succeeded). */
  failingForMs(): number {
    return this.failingSince === null ? 0 : this.now() - this.failingSince;
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
