/**
 * Small helpers of the benchmark: latency summaries, delivery accounting
 * (lost / duplicated ids), progress lines and a plain-text table.
 */

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array (q in 0..100); NaN when empty. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((q / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarize(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((s, v) => s + v, 0);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
  };
}

/** What one delivery of an id looked like at the downstream reader. */
export interface Delivery {
  /** Wall-clock ms the downstream consumer was handed the record. */
  readAt: number;
  /** The ms it is measured from (produce timestamp). */
  sentAt: number;
}

export interface DeliveryReport {
  expected: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Records of ids nobody expected (should be 0). */
  unexpected: number;
  /** Up to 5 example ids of each problem, for the error message. */
  lostExamples: string[];
  duplicatedExamples: string[];
  /** Per delivered id, the first delivery's latency (readAt - sentAt). */
  latencies: number[];
  /** readAt of the last first-delivery, or NaN when none. */
  lastReadAt: number;
}

/** Tracks deliveries by id; `account(expected)` tells which expected ids arrived zero or several times. */
export class DeliveryTracker {
  private readonly seen = new Map<string, { count: number; first: Delivery }>();
  private readonly watches: Array<{ ids: ReadonlySet<string>; count: number }> = [];
  private total = 0;

  record(id: string, d: Delivery): void {
    this.total++;
    const s = this.seen.get(id);
    if (s) s.count++;
    else {
      this.seen.set(id, { count: 1, first: d });
      for (const w of this.watches) if (w.ids.has(id)) w.count++;
    }
  }

  /** A live count of how many of `ids` have arrived at least once (kept up by `record`, so polling it costs nothing). */
  watch(ids: readonly string[]): { readonly count: number } {
    const w = { ids: new Set(ids), count: 0 };
    for (const id of w.ids) if (this.seen.has(id)) w.count++;
    this.watches.push(w);
    return w;
  }

  has(id: string): boolean {
    return this.seen.has(id);
  }

  get(id: string): { count: number; first: Delivery } | undefined {
    return this.seen.get(id);
  }

  /** Records read so far, duplicates included. */
  get records(): number {
    return this.total;
  }

  /** How many of `ids` have arrived at least once. */
  countOf(ids: readonly string[]): number {
    let n = 0;
    for (const id of ids) if (this.seen.has(id)) n++;
    return n;
  }

  account(ids: readonly string[], otherKnown: ReadonlySet<string> = new Set()): DeliveryReport {
    const expectedSet = new Set(ids);
    const lostExamples: string[] = [];
    const duplicatedExamples: string[] = [];
    const latencies: number[] = [];
    let lost = 0;
    let duplicated = 0;
    let lastReadAt = Number.NaN;
    for (const id of expectedSet) {
      const s = this.seen.get(id);
      if (!s) {
        lost++;
        if (lostExamples.length < 5) lostExamples.push(id);
        continue;
      }
      if (s.count > 1) {
        duplicated++;
        if (duplicatedExamples.length < 5) duplicatedExamples.push(`${id} x${s.count}`);
      }
      latencies.push(s.first.readAt - s.first.sentAt);
      if (!(s.first.readAt <= lastReadAt)) lastReadAt = s.first.readAt;
    }
    let unexpected = 0;
    for (const [id, s] of this.seen) if (!expectedSet.has(id) && !otherKnown.has(id)) unexpected += s.count;
    return { expected: expectedSet.size, delivered: expectedSet.size - lost, lost, duplicated, unexpected, lostExamples, duplicatedExamples, latencies, lastReadAt };
  }
}

const started = Date.now();

/**
 * Counts of notable log lines (the bench's logger writes through `countLogLine`):
 * the transaction coordinator answering CONCURRENT_TRANSACTIONS (a new
 * transaction began before the previous commit had completed; kafkajs or the
 * runtime backs off and retries).
 */
export const logCounts = { concurrentTransactions: 0 };

const CONCURRENT = 'another concurrent operation on the same transaction';

export function countLogLine(line: string): void {
  if (line.includes('"msg":"Response ') && line.includes(CONCURRENT)) logCounts.concurrentTransactions++;
}

/**
 * The same count from a log call before pino filters it by level: kafkajs's
 * error responses that it retries itself (CONCURRENT_TRANSACTIONS among them)
 * are logged at debug (streams/logger.ts), below the bench's level, so the
 * bench counts them from its logger's `debug` calls.
 */
export function countKafkaLog(fields: unknown, message: unknown): void {
  const error = (fields as { error?: unknown } | null)?.error;
  if (typeof message === 'string' && message.startsWith('Response ') && typeof error === 'string' && error.includes(CONCURRENT)) logCounts.concurrentTransactions++;
}

/** A progress line on stderr, stamped with the seconds since the benchmark started. */
export function progress(message: string): void {
  process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}\n`);
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Renders rows as an aligned plain-text table (first row = header; numbers right-aligned). */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const numeric = (s: string) => /^[-+]?[\d,.]+( ?[a-z/%]+)?$|^-$/.test(s);
  const line = (r: string[]) => r.map((c, i) => (i > 0 && numeric(c) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = [line(rows[0] ?? []), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows.slice(1)) out.push(line(r));
  return out.join('\n');
}

/** What to close first when the benchmark is interrupted (workers, consumers), newest first. */
const closers = new Set<() => Promise<void>>();
export function closeOnInterrupt(close: () => Promise<void>): () => void {
  closers.add(close);
  return () => closers.delete(close);
}
export async function runInterruptClosers(timeoutMs = 20_000): Promise<void> {
  const all = [...closers].reverse();
  closers.clear();
  for (const close of all) await Promise.race([close().catch(() => {}), sleep(timeoutMs)]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until `done()` holds. Gives up when `progressOf()` has not grown for
 * `stallMs` (or at `deadlineMs`), returning false; prints `describe()` every
 * `everyMs`.
 */
export async function waitWithProgress(opts: {
  done: () => boolean | Promise<boolean>;
  progressOf: () => number;
  describe: () => string;
  stallMs: number;
  deadlineMs?: number;
  everyMs?: number;
  pollMs?: number;
}): Promise<boolean> {
  const start = Date.now();
  let last = opts.progressOf();
  let lastChange = Date.now();
  let lastPrint = Date.now();
  for (;;) {
    if (await opts.done()) return true;
    const now = Date.now();
    const p = opts.progressOf();
    if (p !== last) {
      last = p;
      lastChange = now;
    }
    if (now - lastChange > opts.stallMs) return false;
    if (opts.deadlineMs !== undefined && now - start > opts.deadlineMs) return false;
    if (now - lastPrint >= (opts.everyMs ?? 2000)) {
      lastPrint = now;
      progress(opts.describe());
    }
    await sleep(opts.pollMs ?? 50);
  }
}
