/**
 * A backend written for the tests alone, in one file: a recording device that holds its
 * values in memory of its own (not host-visible: copies go through "read" and "write"), runs
 * the kernels' CPU twins in an in-order queue, one command per `setTimeout` turn, and records
 * every command it gets. It is what a new backend needs and nothing more: the device contract
 * (lib/devices/runtime.ts), its capabilities, and one line that registers it
 * (`FakeDevice.open()`). tests/devices/conformance_test.ts holds it to what the real
 * backends do.
 *
 * @module
 */
import type { Device, DeviceCapabilities, DeviceInfo } from "../../lib/devices/device.ts";
import type { Command, OpFailure, RunCommand } from "../../lib/devices/protocol.ts";
import { type DeviceRuntime, registerRuntime, type Report } from "../../lib/devices/runtime.ts";
import { kernelCode } from "../../lib/kernels/registry.ts";

const clock = () => performance.timeOrigin + performance.now();

/** How a fake device is made. */
export interface FakeDeviceOptions {
  /**
   * ms each command waits in the queue before it runs.
   * @default {1}
   */
  delayMs?: number;
  /**
   * Its largest tensor, in bytes.
   * @default {2 ** 24}
   */
  maxBufferSize?: number;
}

let made = 0;

/** See the module's documentation. */
export class FakeDevice implements Device, DeviceRuntime {
  readonly name: string;
  readonly kind = "fake";
  readonly index: number;
  readonly device: Device = this;
  readonly info: DeviceInfo;
  readonly capabilities: DeviceCapabilities;
  onReport: (report: Report) => void = () => {};
  /** Every command sent, in order. */
  readonly commands: Command[] = [];
  /** Each run command with the values of its inputs as it ran (for replays elsewhere). */
  readonly runs: { cmd: RunCommand; inputs: Float32Array[] }[] = [];
  readonly #values = new Map<number, Float32Array>();
  readonly #failed = new Map<number, string>();
  readonly #queue: Command[] = [];
  readonly #delayMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #busy = false;
  #lost: string | undefined;
  #drained: (() => void)[] = [];

  private constructor(index: number, options: FakeDeviceOptions) {
    this.index = index;
    this.name = `fake:${index}`;
    this.#delayMs = options.delayMs ?? 1;
    const maxBufferSize = options.maxBufferSize ?? 2 ** 24;
    this.info = Object.freeze({
      backend: "fake",
      adapter: "a recording device running the CPU twins",
      software: true,
      features: [],
      maxBufferSize,
      maxStorageBufferBindingSize: maxBufferSize,
    });
    this.capabilities = Object.freeze({
      hostVisible: false,
      readback: true,
      timestamps: false,
      programs: false,
      target: "cpu",
      limits: Object.freeze({ maxBufferSize, maxStorageBufferBindingSize: maxBufferSize }),
    });
  }

  /** A new fake device, registered as its own runtime (the one line a backend needs). */
  static open(options: FakeDeviceOptions = {}): FakeDevice {
    const device = new FakeDevice(made++, options);
    registerRuntime(device);
    return device;
  }

  /** Why it runs nothing more, once closed. */
  get lost(): string | undefined {
    return this.#lost;
  }

  /** Tensors it holds values for. */
  get size(): number {
    return this.#values.size;
  }

  send(batch: Command[]): void {
    if (this.#lost) {
      const message = this.#lost;
      queueMicrotask(() => this.onReport({ type: "lost", message }));
      return;
    }
    this.commands.push(...batch);
    this.#queue.push(...batch);
    this.#schedule();
  }

  /** A pending timer keeps the process alive while work is queued. */
  setBusy(busy: boolean): void {
    this.#busy = busy;
  }

  /** Whether the engine counts work in flight on it. */
  get busy(): boolean {
    return this.#busy;
  }

  /** Runs what was sent before, then refuses everything: later work fails at once. */
  async close(): Promise<void> {
    if (this.#lost) return;
    if (this.#queue.length > 0) await new Promise<void>((r) => this.#drained.push(r));
    this.#lost = `${this.name} was closed`;
    this.#values.clear();
    this.onReport({ type: "lost", message: this.#lost });
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#queue.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const cmd = this.#queue.shift();
      if (cmd) this.#execute(cmd);
      if (this.#queue.length > 0) this.#schedule();
      else for (const r of this.#drained.splice(0)) r();
    }, this.#delayMs);
  }

  #execute(cmd: Command): void {
    const start = clock();
    const done = (op: number, failure?: OpFailure) =>
      this.onReport({
        type: "done",
        ops: failure ? [] : [op],
        start,
        end: clock(),
        failures: failure ? [failure] : [],
      });
    switch (cmd.t) {
      case "free":
        this.#values.delete(cmd.buf);
        this.#failed.delete(cmd.buf);
        return;
      case "write":
        this.#values.set(cmd.buf, new Float32Array(cmd.data.slice(0)));
        return done(cmd.op);
      case "read": {
        const v = this.#values.get(cmd.buf);
        const bad = this.#failed.get(cmd.buf) ?? (v ? undefined : `t${cmd.buf} holds no values`);
        if (bad !== undefined) {
          return this.onReport({ type: "read-failed", op: cmd.op, message: bad });
        }
        const data = v!.slice().buffer as ArrayBuffer;
        return this.onReport({ type: "read", op: cmd.op, data, start, end: clock() });
      }
      case "run":
        return done(cmd.op, this.#run(cmd));
      case "define":
      case "forget":
        return; // never sent: it states no device programs
      case "exec":
        return done(cmd.op, {
          op: cmd.op,
          message: `${this.name} runs no device programs`,
          skipped: false,
        });
    }
  }

  /** Runs one kernel's CPU twin; an in-place kernel's output takes over the old buffer. */
  #run(cmd: RunCommand): OpFailure | undefined {
    const ids = cmd.inPlace === undefined ? cmd.inputs : [...cmd.inputs, cmd.inPlace];
    const inherited = ids.map((id) => this.#failed.get(id)).find((m) => m !== undefined);
    let failure: OpFailure | undefined;
    if (inherited !== undefined) failure = { op: cmd.op, message: inherited, skipped: true };
    else if (ids.some((id) => !this.#values.has(id))) {
      const missing = ids.find((id) => !this.#values.has(id));
      failure = { op: cmd.op, message: `input t${missing} holds no values`, skipped: false };
    } else {
      try {
        const code = kernelCode(cmd.kernel, this.capabilities.target);
        if (code.kind !== "function") throw new TypeError(`${cmd.kernel} gives no function`);
        const inputs = ids.map((id) => this.#values.get(id)!);
        this.runs.push({ cmd, inputs: inputs.map((v) => v.slice()) });
        const results = code.run(inputs, cmd.params);
        if (cmd.inPlace !== undefined) this.#values.delete(cmd.inPlace);
        cmd.outputs.forEach((o, i) => this.#values.set(o.id, results[i]));
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
