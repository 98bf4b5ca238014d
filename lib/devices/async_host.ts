/**
 * Host lanes for asynchronous work, such as the collectives of a process group: a device of
 * its own (`comm`, say) whose ops run on the main thread, one after the other, each an async
 * function of host values, like a communication stream beside the compute streams. Their
 * inputs and outputs are host tensors (the op's `outputDevice` is the host), so the engine
 * orders them with every other op: a copy to the host before, an in-place copy after, and ops
 * queued later see the result, while the devices go on computing. An op that fails with
 * `keep` set gives its fallback values (the inputs as they were) and reports the failure,
 * which surfaces at the next synchronisation.
 *
 * @module
 */
import { type Device, HOST_CAPABILITIES } from "./device.ts";
import type { Command, OpFailure, RunCommand } from "./protocol.ts";
import { type DeviceRuntime, registerRuntime, type Report } from "./runtime.ts";
import { hostRuntime } from "./host_runtime.ts";
import { HostStore } from "./host_store.ts";

/** What an async host kernel gets: its inputs' values and its op's parameters. */
export type AsyncKernel = (
  inputs: readonly Float32Array[],
  params: Readonly<Record<string, unknown>>,
) => Promise<Float32Array[]>;

/** A failure whose op's outputs keep the given values (see the module's documentation). */
export class KeptFailure extends Error {
  /** The outputs to use all the same. */
  readonly outputs: Float32Array[];
  /** Fails with `message`; the outputs take `outputs`. */
  constructor(message: string, outputs: Float32Array[], options?: ErrorOptions) {
    super(message, options);
    this.name = "KeptFailure";
    this.outputs = outputs;
  }
}

const clock = () => performance.timeOrigin + performance.now();

/**
 * The runtime of one async host lane. Its kernels are registered by name.
 *
 * @example
 * ```ts
 * import { AsyncHostRuntime } from "./async_host.ts";
 * const lane = AsyncHostRuntime.open("doubler", {
 *   double: ([x]) => Promise.resolve([x.map((v) => 2 * v)]),
 * });
 * console.log(lane.device.name, lane.device.kind); // "doubler" "cpu"
 * ```
 */
export class AsyncHostRuntime implements DeviceRuntime {
  readonly device: Device;
  onReport: (report: Report) => void = () => {};
  readonly #kernels: Record<string, AsyncKernel>;
  #queue: Command[] = [];
  /** The input values of each queued op, taken when it was sent. */
  readonly #inputs = new Map<number, (Float32Array | undefined)[]>();
  #running = false;
  /** The engine's store of host values (see {@link AsyncHostRuntime.useHostStore}). */
  #store = new HostStore();

  private constructor(device: Device, kernels: Record<string, AsyncKernel>) {
    this.device = device;
    this.#kernels = kernels;
    registerRuntime(this);
  }

  /** A lane named `name` (its device's name) running `kernels`. */
  static open(name: string, kernels: Record<string, AsyncKernel>): AsyncHostRuntime {
    const host = hostRuntime().device;
    const device: Device = Object.freeze({
      name,
      kind: "cpu" as const,
      index: 0,
      info: Object.freeze({ ...host.info, adapter: `host lane ${name}` }),
      capabilities: HOST_CAPABILITIES,
    });
    return new AsyncHostRuntime(device, kernels);
  }

  /** Reads inputs from and puts outputs in `store` (the engine's). */
  useHostStore(store: HostStore): void {
    this.#store = store;
  }

  /** A host lane never goes away. */
  readonly lost: string | undefined = undefined;

  /** Its ops go in program order (a collective must not overtake the one before it). */
  readonly inOrder = true;

  send(batch: Command[]): void {
    // The inputs' values are taken now: the engine may free them on the host's own lane as
    // soon as this op is sent, and the host runs its frees before this lane gets to them.
    const host = this.#store;
    for (const cmd of batch) {
      if (cmd.t === "run") this.#inputs.set(cmd.op, cmd.inputs.map((id) => host.get(id)));
    }
    this.#queue.push(...batch);
    if (!this.#running) {
      this.#running = true;
      queueMicrotask(() => this.#run());
    }
  }

  /** Host work keeps the process alive on its own timers and promises. */
  setBusy(): void {}

  close(): Promise<void> {
    return Promise.resolve();
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0) {
      const cmd = this.#queue.shift()!;
      if (cmd.t === "free") this.#store.delete(cmd.buf);
      else if (cmd.t === "run") await this.#execute(cmd);
      else if (cmd.t !== "define" && cmd.t !== "forget") {
        const now = clock();
        this.#report(cmd.op, now, now, {
          op: cmd.op,
          message: `a ${cmd.t} command cannot run on ${this.device.name}`,
          skipped: false,
        });
      }
    }
    this.#running = false;
  }

  async #execute(cmd: RunCommand): Promise<void> {
    const start = clock();
    const host = this.#store;
    const values = this.#inputs.get(cmd.op)!;
    this.#inputs.delete(cmd.op);
    const kernel = this.#kernels[cmd.kernel];
    let failure: OpFailure | undefined;
    if (!kernel) {
      failure = {
        op: cmd.op,
        message: `${this.device.name} has no kernel ${cmd.kernel}`,
        skipped: false,
      };
    } else if (values.some((v) => v === undefined)) {
      failure = { op: cmd.op, message: "an input holds no values", skipped: false };
    } else {
      try {
        const results = await kernel(values as Float32Array[], cmd.params);
        cmd.outputs.forEach((o, i) => host.put(o.id, results[i]));
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        if (e instanceof KeptFailure) {
          cmd.outputs.forEach((o, i) => host.put(o.id, e.outputs[i]));
          failure = { op: cmd.op, message, skipped: false, kept: true, cause: e.cause ?? e };
        } else failure = { op: cmd.op, message, skipped: false, cause: e };
      }
    }
    this.#report(cmd.op, start, clock(), failure);
  }

  #report(op: number, start: number, end: number, failure?: OpFailure): void {
    this.onReport({
      type: "done",
      ops: failure ? [] : [op],
      start,
      end,
      failures: failure ? [failure] : [],
    });
  }
}
