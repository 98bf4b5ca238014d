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
 * import { cpu } from "../devices/device.ts";
 * import { ones } from "../tensor/creation.ts";
 * import { trace$ } from "../trace/trace.ts";
 * import { synchronize } from "./sync.ts";
 * const done: string[] = [];
 * const sub = trace$().subscribe((e) => done.push(e.op));
 * const x = ones([4, 4]);
 * x.mm(x);
 * await synchronize(cpu()); // or synchronize() for every device
 * sub.unsubscribe();
 * console.log(done); // ["ones", "mm"]
 * ```
 */
export function synchronize(device?: Device): Promise<void> {
  return engine().synchronize(device);
}

/**
 * Waits for all queued work on every device, like MXNet's `npx.waitall()`. Rejects like
 * {@link synchronize}.
 *
 * @example
 * ```ts
 * import { ones } from "../tensor/creation.ts";
 * import { trace$ } from "../trace/trace.ts";
 * import { waitAll } from "./sync.ts";
 * let finished = 0;
 * const sub = trace$().subscribe(() => finished++);
 * ones([2]).mul(3).add(1);
 * await waitAll();
 * sub.unsubscribe();
 * console.log(finished); // 3
 * ```
 */
export function waitAll(): Promise<void> {
  return engine().synchronize();
}
