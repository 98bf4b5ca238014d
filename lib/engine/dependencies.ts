/**
 * When an op may go to its lane: the dependency rules of the engine, as one pure function
 * over the records (tested through the engine's tests).
 *
 * - An input made on the op's own device may still be computing: the device's lane is in
 *   order, so it only has to have been sent. An input on another device, or on the host,
 *   must be done (its copy has landed).
 * - An op after a blocking copy waits until that copy has finished.
 * - An in-place op waits until every other reader of the version it overwrites has been
 *   sent or has finished (write after read); so does a program op for each input it updates.
 * - A program op waits until the segment before it on its device has been sent: segments
 *   of a captured step reuse their static buffers from replay to replay.
 *
 * @module
 */
import type { OpNode } from "./records.ts";
import { isHostVisible } from "../devices/capabilities.ts";

/** true when `op` may be sent now, false when it must wait, "failed" when an input failed. */
export function readiness(op: OpNode): boolean | "failed" {
  if (op.after && op.after.state !== "done" && op.after.state !== "failed") return false;
  // Only the op itself may still count as an unsent reader of what it overwrites.
  if (op.inPlace && op.inPlace.state !== "failed" && op.inPlace.unsentReaders > 1) return false;
  if (op.prev && op.prev.state === "waiting") return false;
  if (op.adopts) {
    for (const t of op.adopts) if (t.state !== "failed" && t.unsentReaders > 1) return false;
  }
  for (const t of op.inputs) {
    if (t.state === "failed") return "failed";
    if (isHostVisible(t.device) || t.device !== op.device) {
      if (t.state !== "done") return false;
    } else if (t.state === "pending") return false;
  }
  return true;
}
