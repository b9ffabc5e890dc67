import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure, no servers, runs in parallel) and `integration`
// (real Kafka, Cassandra and schema registry; files run one at a time so two
// JVM-heavy suites never fight for the 2 cores of a small machine).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          exclude: ['node_modules/**', '.infra/**', 'test/integration/**', 'test/e2e/**'],
          environment: 'node',
          // No unit test depends on speed: a loaded machine (CI, two shared cores) only makes them slower.
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/support/global-setup.ts'],
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
