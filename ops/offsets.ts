/**
 * Consumer lag and throughput per worker group and partition, read with the
 * Kafka admin client: lag is the partition's end offset minus the group's
 * committed offset; throughput is the committed offset's growth between two
 * samples. Topics written in transactions end each transaction with a commit
 * marker that takes an offset, so a caught-up group can show a lag of 1.
 *
 *   const groups = workerGroups(spec, names);
 *   const a = await sampleOffsets(admin, names, groups);
 *   … later …
 *   const b = await sampleOffsets(admin, names, groups);
 *   const rows = lagRows(b, a);   // lag and records/s per group and partition
 */
import type { Admin } from 'kafkajs';
import { WORKERS } from '../consumers/index.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import type { TopicNames } from '../streams/topics.js';

export interface WorkerGroup {
  worker: string;
  groupId: string;
  /** Logical input topics. */
  topics: string[];
}

/** The consumer group of every worker the spec runs, as the runtime names them (`<prefix>loopline-<worker>`). */
export function workerGroups(spec: PipelineSpec, names: TopicNames): WorkerGroup[] {
  return WORKERS.filter((d) => d.enabled?.(spec) ?? true).map((d) => ({
    worker: d.name,
    groupId: `${names.prefix}loopline-${d.name}`,
    topics: d.input.topics.map((t) => t.topic as string),
  }));
}

export interface OffsetSample {
  at: number;
  rows: Array<{ worker: string; group: string; topic: string; partition: number; end: number; committed: number | null }>;
}

/** One read of end offsets and committed offsets of every group's input partitions. */
export async function sampleOffsets(admin: Admin, names: TopicNames, groups: readonly WorkerGroup[]): Promise<OffsetSample> {
  const topics = [...new Set(groups.flatMap((g) => g.topics))];
  const ends = new Map<string, Array<{ partition: number; high: string }>>();
  await Promise.all(
    topics.map(async (t) => {
      ends.set(t, await admin.fetchTopicOffsets(names.physical(t)).catch(() => []));
    }),
  );
  const at = Date.now();
  const rows: OffsetSample['rows'] = [];
  await Promise.all(
    groups.map(async (g) => {
      const committed = await admin.fetchOffsets({ groupId: g.groupId, topics: g.topics.map((t) => names.physical(t)) }).catch(() => []);
      for (const t of g.topics) {
        const byPartition = new Map((committed.find((c) => c.topic === names.physical(t))?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
        for (const e of ends.get(t) ?? []) {
          const c = byPartition.get(e.partition);
          rows.push({ worker: g.worker, group: g.groupId, topic: t, partition: e.partition, end: Number(e.high), committed: c === undefined || c < 0 ? null : c });
        }
      }
    }),
  );
  rows.sort((a, b) => a.worker.localeCompare(b.worker) || a.topic.localeCompare(b.topic) || a.partition - b.partition);
  return { at, rows };
}

export interface LagRow {
  worker: string;
  group: string;
  topic: string;
  partition: number;
  end: number;
  /** Next offset the group will read; null before its first commit. */
  committed: number | null;
  /** end - committed (end when nothing is committed). */
  lag: number;
  /** Committed records per second since the previous sample, or null without one. */
  perSecond: number | null;
}

/** Lag of each row of `now` and its throughput since `before`. Pure. */
export function lagRows(now: OffsetSample, before?: OffsetSample): LagRow[] {
  const prev = new Map((before?.rows ?? []).map((r) => [`${r.group}|${r.topic}|${r.partition}`, r]));
  const seconds = before ? (now.at - before.at) / 1000 : 0;
  return now.rows.map((r) => {
    const p = prev.get(`${r.group}|${r.topic}|${r.partition}`);
    const perSecond = p && seconds > 0 ? Math.max(0, ((r.committed ?? 0) - (p.committed ?? 0)) / seconds) : null;
    return { ...r, lag: Math.max(0, r.end - (r.committed ?? 0)), perSecond };
  });
}

export interface GroupSummary {
  worker: string;
  group: string;
  lag: number;
  perSecond: number | null;
  partitions: LagRow[];
}

/** Rows grouped by worker group, with totals. Pure. */
export function byGroup(rows: readonly LagRow[]): GroupSummary[] {
  const out = new Map<string, GroupSummary>();
  for (const r of rows) {
    const g = out.get(r.group) ?? { worker: r.worker, group: r.group, lag: 0, perSecond: null, partitions: [] };
    g.lag += r.lag;
    if (r.perSecond !== null) g.perSecond = (g.perSecond ?? 0) + r.perSecond;
    g.partitions.push(r);
    out.set(r.group, g);
  }
  return [...out.values()];
}
