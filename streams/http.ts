/**
 * The operator's HTTP endpoint of a worker process: /metrics (Prometheus),
 * /healthz (liveness: every worker running or starting) and /readyz
 * (readiness: every worker running), each with a JSON body.
 */
import http from 'node:http';
import type { Registry } from 'prom-client';
import type { Worker } from './runtime.js';

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

export async function startOpsServer(registry: Registry, workers: () => Worker[], port = 9464, host = '127.0.0.1'): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = req.url ?? '/';
      if (url.startsWith('/metrics')) {
        res.writeHead(200, { 'Content-Type': registry.contentType });
        res.end(await registry.metrics());
        return;
      }
      const health = workers().map((w) => w.health());
      if (url.startsWith('/healthz') || url.startsWith('/readyz')) {
        const ok = url.startsWith('/healthz')
          ? health.every((h) => h.state === 'running' || h.state === 'starting')
          : health.length > 0 && health.every((h) => h.state === 'running');
        res.writeHead(ok ? 200 : 503, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ ok, workers: health }));
        return;
      }
      res.writeHead(404).end();
    })().catch((err: unknown) => {
      res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
