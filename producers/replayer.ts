/**
 * Plays a replay plan as a live stream. Each action gets a wall-clock due
 * time from the pacing: `speed` maps event time to wall time (event-time ms
 * per wall ms, from the first action's time; 'max' = no event-time pacing),
 * and `eventsPerSecond` caps the event rate (the k-th event is not due before
 * start + k/rate, and no action overtakes the event before it). With both,
 * the later of the two applies.
 *
 * The replayer wakes when the next action is due and sends every action due
 * by then, in plan order, as one batch per topic — feature updates, then
 * events, then labels — awaiting each send; a batch holds at most `batchMax`
 * records per topic. Actions due at the same wake-up are treated as
 * simultaneous; at a pace the downstream workers keep up with, that is one
 * row's worth, so a feature value is in the store before the events that may
 * see it. At 'max' speed nothing is paced and the workers may serve values
 * newer than an event (use pointInTimeRows for exact training rows).
 *
 * With `backtest`, event time is paced by the loop's progress, in steps of
 * `step` events: the step's feature updates and events go out in plan order
 * (the feature store serves values point in time, so an update sent before
 * an event it postdates is not seen by it); the replayer waits until those
 * events are scored (`scored`), then sends the labels due up to the step's
 * last event and waits until the loop has settled (`settled`: every worker
 * caught up, the scorers serving the champion). A decision caused by the
 * labels of one step thus serves from the next step on, whatever the replay
 * speed, as it would at real time with a cycle of at most `step` events.
 * Step 1 is the strict protocol (an event is sent only once every label due
 * before it is joined and every decision it caused is served or rejected),
 * costing a full round of the loop per event.
 *
 * An abort stops between batches: the run resolves with what was sent and
 * `aborted: true`. A send error rejects the run.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { ClientEvent, FeatureUpdate, GroundTruth } from '../schemas/types.js';
import type { Logger } from '../streams/logger.js';
import type { LooplineProducer } from './client.js';
import type { ReplayPlan } from './replay-plan.js';

export interface ReplayProgress {
  /** Actions sent so far, of `total`. */
  sent: number;
  total: number;
  events: number;
  features: number;
  labels: number;
  /** How far the last batch went out behind its due time (0 when unpaced). */
  lagMs: number;
}

export interface ReplayRunOptions {
  /** Event-time ms per wall-clock ms (60_000 = one event-time minute per ms), or 'max'. */
  speed: number | 'max';
  /** Cap on events sent per second. */
  eventsPerSecond?: number;
  signal?: AbortSignal;
  /** Called at most every 500 ms while running, and once when done. */
  onProgress?: (p: ReplayProgress) => void;
  /** Most records per topic in one send. Default 200. */
  batchMax?: number;
  /** Pacing by the loop's progress instead of the clock (a backtest); `eventsPerSecond` still caps the rate. */
  backtest?: BacktestPacing;
}

export interface BacktestPacing {
  /** Events per step (>= 1). */
  step: number;
  /** Resolves once every event sent so far is scored. */
  scored: () => Promise<void>;
  /** Resolves once the loop has processed everything sent so far and serves the champion. */
  settled: () => Promise<void>;
}

export interface ReplayResult {
  events: number;
  features: number;
  labels: number;
  /** Ids of the events sent, in send order. */
  eventIds: string[];
  startedAt: number;
  finishedAt: number;
  /** The signal stopped the run before the end of the plan. */
  aborted: boolean;
}

export interface Replayer {
  run(plan: ReplayPlan, opts: ReplayRunOptions): Promise<ReplayResult>;
}

const PROGRESS_EVERY_MS = 500;

export function createReplayer(deps: { producer: LooplineProducer; logger: Logger }): Replayer {
  const { producer, logger } = deps;
  return {
    async run(plan, opts) {
      const { speed, eventsPerSecond, signal, onProgress } = opts;
      const batchMax = opts.batchMax ?? 200;
      if (speed !== 'max' && !(Number.isFinite(speed) && speed > 0)) throw new RangeError(`speed must be a positive number or 'max' (got ${speed})`);
      if (eventsPerSecond !== undefined && !(Number.isFinite(eventsPerSecond) && eventsPerSecond > 0)) throw new RangeError(`eventsPerSecond must be a positive number (got ${eventsPerSecond})`);
      if (!Number.isInteger(batchMax) || batchMax < 1) throw new RangeError(`batchMax must be a positive integer (got ${batchMax})`);

      if (opts.backtest && !(Number.isInteger(opts.backtest.step) && opts.backtest.step >= 1)) throw new RangeError(`backtest step must be a positive integer (got ${opts.backtest.step})`);

      const startedAt = Date.now();
      const paced = speed !== 'max' || eventsPerSecond !== undefined;
      const t0 = plan[0]?.at ?? 0;
      let eventsBefore = 0;
      const due = plan.map((a) => {
        let at = speed === 'max' ? startedAt : startedAt + (a.at - t0) / speed;
        if (eventsPerSecond !== undefined) {
          const k = a.kind === 'event' ? eventsBefore : eventsBefore - 1;
          if (k >= 0) at = Math.max(at, startedAt + (k * 1000) / eventsPerSecond);
        }
        if (a.kind === 'event') eventsBefore++;
        return at;
      });

      const result: ReplayResult = { events: 0, features: 0, labels: 0, eventIds: [], startedAt, finishedAt: startedAt, aborted: false };
      let lagMs = 0;
      let reportedAt = startedAt;
      let i = 0;
      const report = () => onProgress?.({ sent: i, total: plan.length, events: result.events, features: result.features, labels: result.labels, lagMs });
      logger.info({ actions: plan.length, events: eventsBefore, speed, eventsPerSecond }, 'replay starting');

      const send = async (features: FeatureUpdate[], events: ClientEvent[], labels: GroundTruth[]) => {
        for (let k = 0; k < features.length; k += batchMax) await producer.sendFeatureUpdates(features.slice(k, k + batchMax));
        result.features += features.length;
        for (let k = 0; k < events.length; k += batchMax) await producer.sendEvents(events.slice(k, k + batchMax));
        result.events += events.length;
        for (const e of events) result.eventIds.push(e.event_id);
        for (let k = 0; k < labels.length; k += batchMax) await producer.sendGroundTruth(labels.slice(k, k + batchMax));
        result.labels += labels.length;
      };

      while (opts.backtest && i < plan.length) {
        if (signal?.aborted) break;
        const { step, scored, settled } = opts.backtest;
        const features: FeatureUpdate[] = [];
        const events: ClientEvent[] = [];
        const labels: GroundTruth[] = [];
        const start = i;
        let last = i;
        for (; i < plan.length; i++) {
          const a = plan[i]!;
          if (a.kind === 'event' && events.length === step) break;
          if (a.kind === 'feature') features.push(a.record);
          else if (a.kind === 'event') {
            events.push(a.record);
            last = i;
          } else labels.push(a.record);
        }
        const wait = (due[last] as number) - Date.now();
        if (wait > 0) await delay(wait, undefined, { signal }).catch(() => undefined);
        if (signal?.aborted) {
          i = start;
          break;
        }
        await send(features, events, []);
        if (events.length > 0) await scored();
        await send([], [], labels);
        await settled();
        if (Date.now() - reportedAt >= PROGRESS_EVERY_MS) {
          reportedAt = Date.now();
          report();
        }
      }

      while (!opts.backtest && i < plan.length) {
        if (signal?.aborted) break;
        const now = Date.now();
        const next = due[i] as number;
        if (next > now) {
          await delay(next - now, undefined, { signal }).catch(() => undefined);
          continue;
        }
        lagMs = paced ? now - next : 0;
        const features: FeatureUpdate[] = [];
        const events: ClientEvent[] = [];
        const labels: GroundTruth[] = [];
        for (; i < plan.length && (due[i] as number) <= now; i++) {
          const a = plan[i]!;
          if ((a.kind === 'feature' ? features : a.kind === 'event' ? events : labels).length === batchMax) break;
          if (a.kind === 'feature') features.push(a.record);
          else if (a.kind === 'event') events.push(a.record);
          else labels.push(a.record);
        }
        await send(features, events, labels);
        if (Date.now() - reportedAt >= PROGRESS_EVERY_MS) {
          reportedAt = Date.now();
          report();
        }
      }
      result.aborted = i < plan.length;
      result.finishedAt = Date.now();
      report();
      logger.info({ events: result.events, features: result.features, labels: result.labels, aborted: result.aborted, ms: result.finishedAt - startedAt }, 'replay finished');
      return result;
    },
  };
}
