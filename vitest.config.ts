import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Native backends (redb/sled locks) are process-wide: keep each file in its own fork.
    pool: "forks",
    // CI lists every test, so the log names each backend the conformance suite ran against.
    reporters: process.env.CI ? ["verbose"] : ["default"],
  },
});
