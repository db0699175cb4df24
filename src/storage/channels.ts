/** The tracing channel objects behind {@link CHANNELS} (internal: keeps Node types out of the public .d.ts). */
import { channel, tracingChannel } from "node:diagnostics_channel";
import { CHANNELS } from "../diagnostics.js";
export const loadChannel = tracingChannel(CHANNELS.load);
export const saveChannel = tracingChannel(CHANNELS.save);
export const writeBackChannel = tracingChannel(CHANNELS.writeBack);
export const probeChannel = tracingChannel(CHANNELS.probe);
export const stateChannel = channel(CHANNELS.state);
export const busChannel = channel(CHANNELS.bus);

/** Runs `fn` traced on `channel` when someone listens, else plainly. */
export function traced<T>(
  channel: ReturnType<typeof tracingChannel>,
  context: Record<string, unknown>,
  fn: () => Promise<T>,
): Promise<T> {
  return channel.hasSubscribers ? channel.tracePromise(fn, context) : fn();
}
