import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { heldPorts } from './local-stack.js';

describe('heldPorts', () => {
  it('names the ports something already listens on, and only those', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const free = await new Promise<number>((r) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => r(p));
      });
    });
    try {
      expect(await heldPorts([port, free])).toEqual([port]);
    } finally {
      server.close();
    }
  });
});
