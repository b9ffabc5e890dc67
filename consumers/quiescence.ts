/**
 * Whether a running pipeline has caught up with everything sent to it: every
 * worker has committed every record of each of its inputs — what
 * applications sent plus what other workers wrote — and the scorers serve the
 * registry's champion. The backtest pacing of the demo (an event is sent only
 * once the labels before it are joined and every decision they caused is
 * served or rejected) and the demo's final drain are both this condition.
 *
 * Counted in this process, from each worker's committed counts
 * (`Worker.health().counts`), so it applies when the whole loop runs in one
 * process, as the demo and the benchmark do.
 *
 *   const loop = createQuiescence(pipeline, spec, () => sent);
 *   await loop.wait(60_000);
 */
import { TransientError } from '../core/errors.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import { SCORING_WORKERS } from './index.js';
import type { RunningPipeline } from './pipeline.js';
import type { Scorer } from './scorer/scorer.js';

export interface QuiescenceState {
  ok: boolean;
  /** What is still in flight, e.g. `drift-monitor: 480/500 of predictions.labeled`. */
  waiting: string[];
}

export interface Quiescence {
  check(): Promise<QuiescenceState>;
  /** Resolves once quiescent; throws (retriable) with what is stuck after `timeoutMs`. */
  wait(timeoutMs: number, pollMs?: number): Promise<void>;
  /** Resolves once the scoring path (feature writers, preprocessor, scorer; chained or not) has processed everything sent to it. */
  scored(timeoutMs: number, pollMs?: number): Promise<void>;
}

export function createQuiescence(pipeline: RunningPipeline, spec: PipelineSpec, sent: () => Readonly<Record<string, number>>): Quiescence {
  let confirmedControl = -1;
  const scorer = () => pipeline.impl<Scorer>('scorer');

  /** A scoring-path worker, or a chain that starts with one ('preprocessor-scorer'). */
  const scoringPath = (name: string) => (SCORING_WORKERS as readonly string[]).some((w) => name === w || name.startsWith(`${w}-`));

  async function check(only?: (worker: string) => boolean): Promise<QuiescenceState> {
    const health = pipeline.workers.map((w) => ({ w, h: w.health() }));
    const produced = new Map<string, number>(Object.entries(sent()));
    for (const { h } of health) for (const [t, n] of Object.entries(h.counts.out)) produced.set(t, (produced.get(t) ?? 0) + n);
    const waiting: string[] = [];
    for (const { w, h } of health) {
      if (only && !only(w.name)) continue;
      for (const physical of w.topics) {
        const topic = physical.slice(pipeline.prefix.length);
        const want = produced.get(topic) ?? 0;
        const got = h.counts.in[topic] ?? 0;
        if (got < want) waiting.push(`${w.name}: ${got}/${want} of ${topic}`);
      }
    }
    // Model changes announced on control.models must be serving (or refused) before the loop counts as caught up.
    const control = produced.get('control.models') ?? 0;
    const s = scorer();
    if (!only && waiting.length === 0 && s && control !== confirmedControl) {
      const registry = await pipeline.stores.registry.serving(spec.name, spec.model.name);
      const serving = s.serving();
      if (registry.champion !== null && serving.champion !== registry.champion && !s.refused().includes(registry.champion)) waiting.push(`scorer: serving v${serving.champion}, the registry's champion is v${registry.champion}`);
      else confirmedControl = control;
    }
    return { ok: waiting.length === 0, waiting };
  }

  async function until(timeoutMs: number, pollMs: number, only?: (worker: string) => boolean): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = await check(only);
      if (state.ok) return;
      if (Date.now() > deadline) throw new TransientError(`the ${only ? 'scoring path' : 'loop'} did not catch up within ${timeoutMs} ms: ${state.waiting.join('; ')}`, undefined, 'NOT_QUIESCENT');
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  return {
    check: () => check(),
    wait: (timeoutMs, pollMs = 2) => until(timeoutMs, pollMs),
    scored: (timeoutMs, pollMs = 2) => until(timeoutMs, pollMs, scoringPath),
  };
}
