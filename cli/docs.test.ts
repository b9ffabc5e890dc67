import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WORKERS } from '../consumers/index.js';
import { readmePath, renderReadme, topologyText } from './docs.js';

describe('generated README sections', () => {
  it('are up to date with the worker definitions and the topic catalogue (run `npm run gen:docs`)', () => {
    const readme = fs.readFileSync(readmePath, 'utf8');
    expect(renderReadme(readme)).toBe(readme);
  });

  it('name every worker with its input and outputs', () => {
    const t = topologyText();
    for (const d of WORKERS) {
      expect(t).toContain(`[${d.name}]`);
      for (const o of d.outputs) expect(t).toContain(o);
    }
  });
});
