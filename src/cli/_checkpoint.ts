/**
 * The checkpoint file of `migrate`: which keys a run has finished, so that an
 * interrupted run resumes without copying them again.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { PersistenceError } from "../index.js";
import { messageOf, UsageError } from "./_run.js";

/** What a checkpoint belongs to: a migrate from one profile to another, with a prefix. */
export interface CheckpointHeader {
  from: string;
  to: string;
  prefix: string;
}

/**
 * The keys a migrate has finished, one JSON string per line after a header
 * line. Each key is appended with a synchronous write as soon as its copy
 * lands, so a killed process loses at most the copies in flight (which the
 * next run repeats: copying is idempotent).
 */
export class Checkpoint {
  private constructor(
    readonly path: string,
    readonly done: Set<string>,
    private fd: number | undefined,
  ) {}

  /**
   * Opens the checkpoint at `path` (a new one, or with `fresh`, a new one
   * over any old file) and reads the keys it records.
   * @throws UsageError for a file that is not a checkpoint, or one of another migrate.
   */
  static open(path: string, header: CheckpointHeader, fresh: boolean): Checkpoint {
    const done = new Set<string>();
    let text: string | undefined;
    if (!fresh && existsSync(path)) text = readFileSync(path, "utf8");
    if (text !== undefined && text !== "") {
      const lines = text.split("\n");
      // The last line is complete only if the file ends with a newline; a kill mid-write leaves a partial one.
      lines.pop();
      let head: (CheckpointHeader & { terraphimMigrate?: number }) | undefined;
      try {
        head = JSON.parse(lines[0] ?? "");
      } catch {
        head = undefined;
      }
      if (head?.terraphimMigrate !== 1) {
        throw new UsageError(
          `${path} is not a migrate checkpoint; remove it, give another --checkpoint, or use --fresh`,
        );
      }
      if (head.from !== header.from || head.to !== header.to || head.prefix !== header.prefix) {
        throw new UsageError(
          `checkpoint ${path} belongs to a migrate from "${head.from}" to "${head.to}" with prefix "${head.prefix}", not this one; give another --checkpoint, or --fresh to start over`,
        );
      }
      for (const line of lines.slice(1)) {
        try {
          const key = JSON.parse(line);
          if (typeof key === "string") done.add(key);
        } catch {
          // A torn line: that key is copied again.
        }
      }
    }
    let fd: number;
    try {
      if (text === undefined || text === "") {
        fd = openSync(path, "w", 0o600);
        writeSync(fd, `${JSON.stringify({ terraphimMigrate: 1, ...header })}\n`);
      } else {
        fd = openSync(path, "a");
        // Start on a fresh line after a torn one.
        if (!text.endsWith("\n")) writeSync(fd, "\n");
      }
    } catch (err) {
      throw new PersistenceError(
        `cannot write the migrate checkpoint ${path}: ${messageOf(err)} (give a writable --checkpoint PATH)`,
      );
    }
    return new Checkpoint(path, done, fd);
  }

  /** Records `key` as finished. */
  record(key: string): void {
    if (this.fd !== undefined) writeSync(this.fd, `${JSON.stringify(key)}\n`);
  }

  /** Closes the file, keeping it for a later run to resume. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Closes and deletes the file: nothing is left to resume. */
  remove(): void {
    this.close();
    rmSync(this.path, { force: true });
  }
}
