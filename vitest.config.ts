import { defineConfig } from 'vitest/config';

// Tests import the TypeScript sources directly; anything that must run in a worker thread or a child
// process uses the compiled dist/ (npm test runs `tsc` first through `pretest`).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
