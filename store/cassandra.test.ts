import { describe, expect, it } from 'vitest';
import { nativePort } from './cassandra.js';

describe('nativePort', () => {
  it('is the port every contact point names, so discovered nodes are reached on it too', () => {
    expect(nativePort(['127.0.0.1:24042', '127.0.0.2:24042', '127.0.0.3:24042'])).toBe(24042);
    expect(nativePort(['[::1]:19042'])).toBe(19042);
  });
  it('is null without a port or with different ports (the driver takes one port for all)', () => {
    expect(nativePort(['cassandra'])).toBeNull();
    expect(nativePort(['a:9042', 'b:9043'])).toBeNull();
    expect(nativePort(['a:9042', 'b'])).toBeNull();
  });
});
