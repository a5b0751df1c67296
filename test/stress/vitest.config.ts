// `npm run stress`: long runs under failing servers, kept out of `npm test` (vitest.config.ts).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    name: 'stress',
    include: ['test/stress/**/*.test.ts'],
    globalSetup: ['test/fixtures/global-setup.ts'],
    setupFiles: ['test/fixtures/setup-file.ts'],
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
    testTimeout: 1_200_000,
    hookTimeout: 180_000,
  },
});
