/**
 * The spec a running worker serves, kept current with the versions
 * `loopline setup --spec` applies (the `pipeline_specs` table), so a new
 * feature reaches the preprocessor, the scorer and the model builder without
 * a restart.
 *
 * A worker starts on the spec it was given. `open()` reads the newest applied
 * version: when it is the same spec, the worker is on that version;
 * otherwise the start spec stays (an unversioned spec, e.g. the demo's or a
 * test's), and only a version applied later is adopted. `refresh()` reads
 * the table at most every `pollMs` (or now, with `force`) and adopts a newer
 * version between chunks, so a chunk is never half one version, half the
 * next. A version for another pipeline or model name, or one that no longer
 * parses, is logged and ignored (setup refuses both before recording).
 */
import { parseSpec, type PipelineSpec } from '../pipelines/spec.js';
import type { PipelineSpecStore } from '../store/pipeline-specs.js';
import type { Logger } from '../streams/logger.js';

export interface LiveSpec {
  /** The spec to serve now. */
  current(): PipelineSpec;
  /** Its version in pipeline_specs, or null for an unversioned start spec. */
  version(): number | null;
  /** Reads the newest applied version; must run before the first refresh. */
  open(): Promise<void>;
  /** Adopts a newer applied version if one is there (at most one read per pollMs unless forced). True when the spec changed. */
  refresh(options?: { force?: boolean }): Promise<boolean>;
}

export interface LiveSpecDeps {
  initial: PipelineSpec;
  /** Absent: the start spec serves for good (flow tests without a spec table). */
  store?: Pick<PipelineSpecStore, 'latest'>;
  pollMs: number;
  logger: Logger;
  now?: () => number;
  /** Called after a new version is adopted. */
  onChange?: (spec: PipelineSpec, version: number) => void;
}

/** Pure: the same spec, whatever the key order of its source text. */
export const sameSpec = (a: PipelineSpec, b: PipelineSpec): boolean => JSON.stringify(a) === JSON.stringify(b);

export function createLiveSpec(deps: LiveSpecDeps): LiveSpec {
  const now = deps.now ?? Date.now;
  const { initial, logger } = deps;
  let spec = initial;
  let version: number | null = null;
  /** Newest version seen (adopted or ignored): only a later one is looked at. */
  let seen = 0;
  let lastPoll = -Infinity;

  function parseStored(text: string, v: number): PipelineSpec | null {
    try {
      const next = parseSpec(JSON.parse(text), `pipeline spec version ${v}`);
      if (next.name !== initial.name || next.model.name !== initial.model.name) {
        logger.error({ version: v, pipeline: next.name, model: next.model.name }, 'applied spec version names another pipeline or model; ignored');
        return null;
      }
      return next;
    } catch (err) {
      logger.error({ err, version: v }, 'applied spec version does not parse; ignored');
      return null;
    }
  }

  return {
    current: () => spec,
    version: () => version,
    async open() {
      if (!deps.store) return;
      lastPoll = now();
      const latest = await deps.store.latest(initial.name);
      if (!latest) return;
      seen = latest.version;
      const stored = parseStored(latest.spec, latest.version);
      if (stored && sameSpec(stored, initial)) version = latest.version;
    },
    async refresh(options = {}) {
      if (!deps.store) return false;
      const t = now();
      if (!options.force && t - lastPoll < deps.pollMs) return false;
      lastPoll = t;
      const latest = await deps.store.latest(initial.name);
      if (!latest || latest.version <= seen) return false;
      seen = latest.version;
      const next = parseStored(latest.spec, latest.version);
      if (!next) return false;
      const from = version;
      spec = next;
      version = latest.version;
      logger.info({ pipeline: spec.name, from, to: version, change: latest.change }, 'spec version picked up');
      deps.onChange?.(spec, latest.version);
      return true;
    },
  };
}
