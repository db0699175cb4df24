import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Native backends (redb/sled locks) are process-wide: keep each file in its own fork.
    pool: "forks",
    reporters: ["default"],
  },
});
