/**
 * A device's in-order lane: the ops waiting for it, the ops in flight on it and the flow
 * control that bounds them, and the outbox of commands it sends to the device's runtime.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import type { Command } from "../devices/protocol.ts";
import type { DeviceRuntime } from "../devices/runtime.ts";
import type { OpNode } from "./records.ts";
import { readiness } from "./dependencies.ts";

/** Limits of the work in flight on one lane. */
export interface FlowLimits {
  maxOpsInFlight: number;
  maxBytesInFlight: number;
}

/** See the module's documentation. */
export class Lane {
  /** Ops not yet sent, in program order. */
  waiting: OpNode[] = [];
  inflight = 0;
  inflightBytes = 0;
  /** Commands for the next batch. */
  outbox: Command[] = [];
  /** Ops submitted and not yet finished. */
  readonly unfinished = new Set<OpNode>();
  /** Ops sent and not yet finished, by id. */
  readonly sent = new Map<number, OpNode>();

  /** The lane of `device`, sending to `runtime`. */
  constructor(readonly device: Device, readonly runtime: DeviceRuntime) {}

  /**
   * Goes through the waiting ops in order and sends each that may go (its dependencies are
   * met, see dependencies.ts, and the limits have room), skips each whose input failed, and
   * keeps the rest in order. Once
   * the ops in flight reach the limit, the rest keeps its place unexamined (a long queue is
   * not rescanned on every completion); on an in-order lane (`runtime.inOrder`), so does
   * everything after an op that cannot go yet.
   */
  admit(
    limits: FlowLimits,
    send: (op: OpNode) => void,
    skip: (op: OpNode) => void,
  ): void {
    let kept = 0;
    const waiting = this.waiting;
    const inOrder = this.runtime.inOrder === true;
    for (let i = 0; i < waiting.length; i++) {
      const op = waiting[i];
      if (this.inflight >= limits.maxOpsInFlight) {
        if (kept !== i) waiting.copyWithin(kept, i);
        kept += waiting.length - i;
        break;
      }
      const full = this.inflight > 0 && this.inflightBytes + op.bytes > limits.maxBytesInFlight;
      const r = readiness(op);
      if (r === "failed") skip(op);
      else if (r && !full) send(op);
      else if (inOrder) {
        if (kept !== i) waiting.copyWithin(kept, i);
        kept += waiting.length - i;
        break;
      } else waiting[kept++] = op;
    }
    waiting.length = kept;
  }

  /** Counts an op into or out of flight; a busy device keeps the process alive. */
  count(op: OpNode, delta: 1 | -1): void {
    this.inflight += delta;
    this.inflightBytes += delta * op.bytes;
    if (this.inflight === (delta > 0 ? 1 : 0)) this.runtime.setBusy(delta > 0);
  }

  /**
   * Sends the outbox to the runtime as one batch; the device cuts it into command buffers
   * (webgpu_worker.ts holds the one batch limit).
   */
  flush(timing: boolean): void {
    if (this.outbox.length === 0) return;
    this.runtime.send(this.outbox, timing);
    this.outbox = [];
  }
}
