import { describe, expect, it } from 'vitest';
import { createTopicNames, TOPICS, topicSpec } from './topics.js';

describe('topic catalogue', () => {
  it('every dead-letter topic named by a topic exists in the catalogue', () => {
    for (const t of TOPICS) if (t.deadLetter) expect(() => topicSpec(t.deadLetter!)).not.toThrow();
  });

  it('names are unique and valid Kafka topic names', () => {
    const names = TOPICS.map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[A-Za-z0-9._-]{1,200}$/);
  });

  it('uses TopicNameStrategy for single-type topics and TopicRecordNameStrategy for mixed ones', () => {
    const n = createTopicNames('staging.');
    expect(n.physical('predictions')).toBe('staging.predictions');
    expect(n.subject('predictions', 'Prediction')).toBe('staging.predictions-value');
    expect(n.subject('monitor.reports', 'DriftReport')).toBe('staging.monitor.reports-dev.loopline.DriftReport');
  });
});
