/**
 * The trace: one Observable of plain, serialisable events, one per op, copy and
 * benchmark span. Viewers and exporters read it and nothing else does.
 *
 * @module
 */
import type { Observable } from "npm:rxjs@7.8.2";
import { engine } from "../engine/engine.ts";

export type { TraceEvent } from "../engine/engine.ts";

/**
 * The stream of trace events of every op that finishes from now on.
 *
 * @example
 * ```ts
 * import { trace$ } from "./trace.ts";
 * import { ones } from "../tensor/creation.ts";
 * import { synchronize } from "../engine/sync.ts";
 * const ops: string[] = [];
 * const sub = trace$().subscribe((e) => ops.push(e.op));
 * ones([4]).add(1);
 * await synchronize();
 * sub.unsubscribe();
 * console.log(ops); // ["ones", "add"]
 * ```
 */
export function trace$(): Observable<import("../engine/engine.ts").TraceEvent> {
  return engine().events.asObservable();
}
