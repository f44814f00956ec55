import { defineConfig } from 'vitest/config';

// Tests import the TypeScript sources directly; anything that must run in a worker thread or a child
// process uses the compiled dist/ (npm test runs `tsc` first through `pretest`).
//
// Two groups. "unit" files run two at a time. "realtime" files stream simulated portals in real time or drive a
// browser, and assert on what a real-time system must deliver (a slow screen does not delay others, suggestions
// arrive before scan.end, a drain finishes within its timeout): on a 2-core CI machine two of them side by side
// starve each other, so they run one file at a time, after the unit group (sequence.groupOrder).
const REALTIME = [
  'test/ui/**/*.test.ts',
  'test/operator/slow-operator.test.ts',
  'test/results/gateway-inference.test.ts',
  'test/ops/shutdown.test.ts',
  'test/tools/eval/**/*.test.ts',
];

const shared = { testTimeout: 60_000, hookTimeout: 60_000, pool: 'forks' as const };

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...shared,
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: REALTIME,
          fileParallelism: true,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: 'realtime',
          include: REALTIME,
          fileParallelism: false,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
