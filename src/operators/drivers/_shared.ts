import { ClosedError } from "../../errors.js";

const encoder = new TextEncoder();

/** Strings are stored as UTF-8; bytes are used as given. */
export function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? encoder.encode(data) : data;
}

/** Tracks whether an operator was closed, and throws `ClosedError` when it was. */
export class OpenState {
  #closed = false;
  constructor(private readonly scheme: string) {}
  get closed(): boolean {
    return this.#closed;
  }
  close(): boolean {
    const was = this.#closed;
    this.#closed = true;
    return !was;
  }
  check(key?: string): void {
    if (this.#closed) throw new ClosedError(`The ${this.scheme} operator is closed`, { key });
  }
}
