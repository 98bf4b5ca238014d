/**
 * The host's runtime (`cpu()`): runs the kernels' CPU twins on the main thread, in order,
 * on the values of the engine's host store (host_store.ts), where it puts its results too.
 * Like a device Worker, it reports each op once it has run; ops run
 * in macrotasks of their own, so Worker replies and user code interleave with host work.
 *
 * @module
 */
import { cpu, type Device } from "./device.ts";
import type { Command, OpFailure, RunCommand } from "./protocol.ts";
import { type DeviceRuntime, registerRuntime, type Report } from "./runtime.ts";
import { kernel } from "../kernels/registry.ts";
import { HostStore } from "./host_store.ts";
import { nextTask } from "./next_task.ts";

/**
 * ms of host ops run back to back before the event loop gets a turn (next_task.ts).
 */
const HOST_SLICE_MS = 2;

const clock = () => performance.timeOrigin + performance.now();

/** See the module's documentation. */
export class HostRuntime implements DeviceRuntime {
  readonly device: Device = cpu();
  onReport: (report: Report) => void = () => {};
  /** The engine's store (see {@link HostRuntime.useHostStore}); a store of its own until then. */
  #values = new HostStore();
  /** Tensors whose producing op failed: ops reading them fail the same way. */
  readonly #failed = new Map<number, string>();
  #queue: Command[] = [];
  #running = false;
  #inSlice = false;
  /** Called as each slice of host work ends (the engine then sends what it held back). */
  onSliceEnd: () => void = () => {};

  /**
   * Whether a slice of host ops is running: the engine holds device batches back until it
   * ends, so the copies and ops that several host ops unblock go to a device as one batch.
   */
  get inSlice(): boolean {
    return this.#inSlice;
  }

  /** Reads inputs from and puts outputs in `store` (the engine's). */
  useHostStore(store: HostStore): void {
    this.#values = store;
  }

  /** Host tensors holding values, for tests. */
  get size(): number {
    return this.#values.size;
  }

  send(batch: Command[]): void {
    this.#queue.push(...batch);
    if (this.#running) return;
    this.#running = true;
    nextTask(() => this.#run());
  }

  /** Host work runs on the main thread's own timers, which keep the process alive. */
  setBusy(): void {}

  /** The host never goes away. */
  readonly lost: string | undefined = undefined;

  close(): Promise<void> {
    this.#failed.clear();
    return Promise.resolve();
  }

  /**
   * Runs queued commands for up to {@link HOST_SLICE_MS}, reporting each op as it completes.
   * Between two ops it lets the microtasks run, so the engine sends the work each op
   * unblocks (more host ops join this slice).
   */
  async #run(): Promise<void> {
    const sliceStart = performance.now();
    this.#inSlice = true;
    try {
      await this.#slice(sliceStart);
    } finally {
      this.#inSlice = false;
    }
    if (this.#queue.length > 0) nextTask(() => this.#run());
    else this.#running = false;
    this.onSliceEnd();
  }

  /** Runs queued commands until the queue is empty or the slice's time is up. */
  async #slice(sliceStart: number): Promise<void> {
    while (this.#queue.length > 0 && performance.now() - sliceStart < HOST_SLICE_MS) {
      const cmd = this.#queue.shift()!;
      if (cmd.t === "free") {
        this.#values.delete(cmd.buf);
        this.#failed.delete(cmd.buf);
        continue;
      }
      // Device programs are never defined on the host (capture.ts keeps host ops as they are).
      if (cmd.t === "define" || cmd.t === "forget") continue;
      const start = clock();
      const failure = cmd.t === "run"
        ? this.#execute(cmd)
        : { op: cmd.op, message: `a ${cmd.t} command cannot run on the host`, skipped: false };
      const end = clock();
      this.onReport({
        type: "done",
        ops: failure ? [] : [cmd.op],
        start,
        end,
        failures: failure ? [failure] : [],
      });
      await Promise.resolve();
    }
  }

  /** Runs one kernel's CPU twin; returns its failure, if any. */
  #execute(cmd: RunCommand): OpFailure | undefined {
    const ids = cmd.inPlace === undefined ? cmd.inputs : [...cmd.inputs, cmd.inPlace];
    const inherited = ids.map((id) => this.#failed.get(id)).find((m) => m !== undefined);
    const missing = ids.find((id) => !this.#values.has(id));
    let failure: OpFailure | undefined;
    if (inherited !== undefined) failure = { op: cmd.op, message: inherited, skipped: true };
    else if (missing !== undefined) {
      failure = { op: cmd.op, message: `input t${missing} holds no values`, skipped: false };
    } else {
      try {
        const results = kernel(cmd.kernel).cpu(ids.map((id) => this.#values.get(id)!), cmd.params);
        // In place: the output is the new version of the overwritten tensor.
        if (cmd.inPlace !== undefined) this.#values.delete(cmd.inPlace);
        cmd.outputs.forEach((o, i) => this.#values.put(o.id, results[i]));
        return undefined;
      } catch (e) {
        failure = {
          op: cmd.op,
          message: e instanceof Error ? e.message : String(e),
          skipped: false,
          cause: e,
        };
      }
    }
    for (const o of cmd.outputs) this.#failed.set(o.id, failure.message);
    return failure;
  }
}

let host: HostRuntime | undefined;

/** The host's runtime, made (and registered for `cpu()`) on first use. */
export function hostRuntime(): HostRuntime {
  if (!host) {
    host = new HostRuntime();
    registerRuntime(host);
  }
  return host;
}

// The host is always there: its runtime runs `cpu()` from the start.
hostRuntime();
