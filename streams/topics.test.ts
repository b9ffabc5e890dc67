import { describe, expect, it } from 'vitest';
import { createTopicNames, decodeOptionsFor, TOPICS, topicSpec } from './topics.js';

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

  it('decode options allow the subjects of every record type a topic carries', () => {
    const n = createTopicNames('staging.');
    expect(decodeOptionsFor(n, 'events.client')).toEqual({ subjects: ['staging.events.client-value'] });
    expect(decodeOptionsFor(n, 'monitor.reports', { maxRecordBytes: 4096 })).toEqual({
      subjects: ['staging.monitor.reports-dev.loopline.QualityReport', 'staging.monitor.reports-dev.loopline.DriftReport'],
      maxRecordBytes: 4096,
    });
  });
});
