/**
 * Synchronisation points: wait for queued work and surface asynchronous failures.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { engine } from "./engine.ts";

/**
 * Waits for the work queued so far on `device`, or on every device when none is given, like
 * `torch.cuda.synchronize()`. Rejects with one AggregateError of every asynchronous failure
 * not yet reported there; each error names the op and where it was created.
 *
 * @example
 * ```ts
 * import { rand } from "../tensor/creation.ts";
 * import { synchronize } from "./sync.ts";
 * const x = rand([64, 64]);
 * x.mm(x);
 * await synchronize();
 * ```
 */
export function synchronize(device?: Device): Promise<void> {
  return engine().synchronize(device);
}

/** Waits for all queued work on every device, like MXNet's `npx.waitall()`. */
export function waitAll(): Promise<void> {
  return engine().synchronize();
}
