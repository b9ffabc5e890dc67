import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { portOf, processCpuSeconds } from './cpu.js';
import { ownerOf, summarizeProfile, type CpuProfile } from './profile.js';

describe('bench CPU accounting', () => {
  it('finds the port of an address or URL', () => {
    expect(portOf('127.0.0.1:19092')).toBe(19092);
    expect(portOf('http://127.0.0.1:18081/apis/ccompat/v7')).toBe(18081);
    expect(portOf('https://registry.example')).toBe(443);
    expect(portOf('localhost')).toBeNull();
    expect(portOf(undefined)).toBeNull();
  });

  it('reads its own CPU time from /proc, NaN for a process that does not exist', () => {
    if (process.platform === 'linux') expect(processCpuSeconds(process.pid)).toBeGreaterThanOrEqual(0);
    expect(processCpuSeconds(2 ** 30)).toBeNaN();
  });

  it('names the owner of a frame: a package, a folder of the repository, or null', () => {
    const repo = (p: string) => `file://${path.join(process.cwd(), p)}`;
    expect(ownerOf(`file://${process.cwd()}/node_modules/kafkajs/src/broker/index.js`)).toBe('kafkajs');
    expect(ownerOf(`file://${process.cwd()}/node_modules/@confluentinc/x/a.js`)).toBe('@confluentinc/x');
    expect(ownerOf(repo('streams/runtime.ts'))).toBe('streams/');
    expect(ownerOf(repo('test/bench/reader.ts'))).toBe('test/bench');
    expect(ownerOf('node:internal/streams/readable')).toBeNull();
    expect(ownerOf('')).toBeNull();
  });

  it('attributes each sample to the nearest owned frame on its stack; GC and idle are their own rows', () => {
    const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 });
    const kafkajs = `file://${process.cwd()}/node_modules/kafkajs/src/a.js`;
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(root)'), children: [2, 4, 5] },
        { id: 2, callFrame: frame('send', kafkajs), children: [3] },
        { id: 3, callFrame: frame('copy', 'node:buffer') },
        { id: 4, callFrame: frame('(garbage collector)') },
        { id: 5, callFrame: frame('(idle)') },
      ],
      // 3 ms in a Buffer copy called by kafkajs, 1 ms in kafkajs itself, 2 ms GC, 4 ms idle.
      samples: [3, 3, 3, 2, 4, 4, 5, 5, 5, 5],
      timeDeltas: Array(10).fill(1000),
      startTime: 0,
      endTime: 10_000,
    };
    const s = summarizeProfile(profile);
    expect(s).toMatchObject({ totalMs: 10, busyMs: 6 });
    expect(s.byOwner).toEqual([
      { owner: 'kafkajs', ms: 4, share: 4 / 6 },
      { owner: 'GC', ms: 2, share: 2 / 6 },
    ]);
    expect(s.topFunctions[0]).toEqual({ fn: 'copy (node:buffer:1)', ms: 3, share: 0.5 });
  });
});
