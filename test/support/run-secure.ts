/**
 * `npm run test:secure [-- vitest args]`: the integration project against the
 * secured local stack. Brings the secure stack up (its own ports and data,
 * `.infra/secure`; certificates and credentials made on the first start),
 * runs vitest with the stack's admin environment in "existing servers" mode,
 * then stops the stack unless it was already running or LOOPLINE_KEEP_STACK=1.
 *
 * The suite runs as the admin principal (setup creates topics and ACLs);
 * test/integration/secure-stack.test.ts runs a worker as its own
 * least-privilege principal, with the credentials file named by
 * LOOPLINE_TEST_SECURE_CREDENTIALS.
 *
 *   npm run test:secure
 *   npm run test:secure -- test/integration/secure-stack.test.ts
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createLocalStack } from '../../infra/local-stack/local-stack.js';
import { projectRoot } from '../../infra/local-stack/paths.js';
import { readSecureMaterial } from '../../infra/local-stack/secure.js';

const log = (m: string) => console.log(`[secure stack] ${m}`);
const stack = createLocalStack({ secure: true, progress: log });
const wasUp = (await stack.status()).every((s) => s.ready);
let code = 1;
try {
  const started = Date.now();
  await stack.up();
  log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const material = readSecureMaterial(stack.paths.home);
  if (!material) throw new Error('the secure stack is up but its credentials are missing');
  const env = {
    ...process.env,
    ...stack.clientEnv('admin'),
    LOOPLINE_TEST_SERVICES: 'existing',
    LOOPLINE_TEST_SECURE_CREDENTIALS: material.credentialsFile,
  };
  const vitest = path.join(projectRoot, 'node_modules', 'vitest', 'vitest.mjs');
  const child = spawn(process.execPath, [vitest, 'run', '--project', 'integration', ...process.argv.slice(2)], { cwd: projectRoot, env, stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  code = await new Promise<number>((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0))));
} finally {
  if (!wasUp && process.env.LOOPLINE_KEEP_STACK !== '1') {
    log('stopping');
    await stack.down();
  }
}
process.exit(code);
