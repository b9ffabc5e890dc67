// Spec versions on the real stack: `setup --spec` (infra/spec-setup.ts) records a spec that adds a
// feature (an aggregate of the events) as the next version, refuses one that would break the serving
// champion with the reason (nothing recorded), and the loop keeps serving: the champion, trained
// before the new feature existed, scores every event under the evolved spec.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCORING_WORKERS, startPipeline, type RunningPipeline } from '../../consumers/pipeline.js';
import type { Scorer } from '../../consumers/scorer/scorer.js';
import { setupSpec } from '../../infra/spec-setup.js';
import { loadSpec, PipelineSpecSchema, type PipelineSpec } from '../../pipelines/spec.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { createLooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import type { Prediction } from '../../schemas/types.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { createPipelineSpecStore } from '../../store/pipeline-specs.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { readToEnd, workersCaughtUp } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const specFile = path.join(root, 'pipelines', 'elec2.json');
const { spec, dir } = loadSpec(specFile);
const csv = readCsv(path.join(dir, spec.replay!.csv));
const text = fs.readFileSync(specFile, 'utf8');

/** Elec2 plus a rolling demand feature aggregated from the events, which the model now names. */
const evolvedRaw = JSON.parse(text) as Record<string, any>;
evolvedRaw.featureSets.push({ name: 'demand', source: 'events', features: { nswdemand_ma48: 'numeric' }, aggregates: { nswdemand_ma48: { field: 'nswdemand', op: 'mean', window: 48 } } });
evolvedRaw.model.features.push('nswdemand_ma48');
const evolved: PipelineSpec = PipelineSpecSchema.parse(evolvedRaw);
/** The evolved spec without the 7-day price average the champion takes. */
const breakingRaw = structuredClone(evolvedRaw);
delete breakingRaw.featureSets[0].features.nswprice_ma48;
delete breakingRaw.replay.feeds[0].features.nswprice_ma48;
breakingRaw.model.features = breakingRaw.model.features.filter((f: string) => f !== 'nswprice_ma48');
const breaking: PipelineSpec = PipelineSpecSchema.parse(breakingRaw);
/** A kind change: `period` served as categorical. */
const retypedRaw = structuredClone(evolvedRaw);
retypedRaw.events.fields.period = 'categorical';
const retyped: PipelineSpec = PipelineSpecSchema.parse(retypedRaw);

let env: TestEnv;
let pipeline: RunningPipeline | null = null;
beforeAll(async () => {
  env = await createTestEnv('specevo');
  await trainBootstrap(spec, dir, createModelRegistry(env.cql));
});
afterAll(async () => {
  await pipeline?.stop();
  await env?.cleanup();
});

describe('spec versions', () => {
  it('records a spec adding a feature, refuses one breaking the champion with the reason, and the loop keeps serving', async () => {
    const first = await setupSpec(env.config, spec, text, env.logger);
    expect(first).toMatchObject({ outcome: 'applied', version: 1, created: true });
    expect(await setupSpec(env.config, spec, text, env.logger)).toMatchObject({ outcome: 'applied', version: 1, created: false });

    const added = await setupSpec(env.config, evolved, JSON.stringify(evolvedRaw, null, 2), env.logger);
    expect(added).toMatchObject({ outcome: 'applied', version: 2, created: true });
    expect(added.change.addedInputs).toEqual(['nswdemand_ma48']);
    expect(added.change.addedFeatureSets).toEqual(['demand']);
    expect(added.summary).toContain('model inputs');

    const refused = await setupSpec(env.config, breaking, JSON.stringify(breakingRaw), env.logger);
    expect(refused.outcome).toBe('refused');
    if (refused.outcome !== 'refused') throw new Error('unreachable');
    expect(refused.appliedVersion).toBe(2);
    expect(refused.problems).toEqual(['champion elec2-updown@1 could not be served: the model needs "nswprice_ma48", which the pipeline does not serve']);
    const retype = await setupSpec(env.config, retyped, JSON.stringify(retypedRaw), env.logger);
    expect(retype).toMatchObject({ outcome: 'refused', problems: ['champion elec2-updown@1 could not be served: the model takes "period" as numeric, the pipeline serves it as categorical'] });
    const latest = await createPipelineSpecStore(env.cql).latest(spec.name);
    expect(latest?.version).toBe(2);
    expect(latest?.change).toContain('added inputs nswdemand_ma48');

    // The loop on the applied version (2): the champion, which never saw the new feature, serves every event.
    pipeline = await startPipeline(env.config, evolved, env.logger, { workers: SCORING_WORKERS, runtime: { batchMax: 200 } });
    expect(pipeline.impl<Scorer>('scorer')!.serving().champion).toBe(1);
    expect(pipeline.impl<Scorer>('scorer')!.refused()).toEqual([]);
    const producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
    await producer.connect();
    const plan = buildReplayPlan(evolved, csv, { offset: 6000, limit: 300 }).filter((a) => a.kind !== 'label');
    const sent = await createReplayer({ producer, logger: env.logger }).run(plan, { speed: 'max', eventsPerSecond: 2000 });
    await producer.disconnect();
    await waitFor('every worker to consume all its input', () => workersCaughtUp(env.kafka, env.admin, pipeline!.workers, env.names.prefix), 120_000, 500);
    const served: Prediction[] = [];
    for (const m of await readToEnd(env.kafka, env.admin, env.names.physical('predictions'))) {
      const d = await env.codec.decode('Prediction', m.value);
      if (d.ok) served.push(d.value);
    }
    expect(served).toHaveLength(sent.events);
    expect(new Set(served.map((p) => p.model_version))).toEqual(new Set([1]));
  }, 300_000);
});
