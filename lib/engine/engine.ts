/**
 * The dependency engine: records each op's inputs and outputs, sends an op to its device's
 * in-order lane as soon as its inputs are on that device, waits for cross-device inputs,
 * bounds the work in flight, and surfaces asynchronous failures at synchronisation points.
 *
 * @module
 */
import { Subject } from "npm:rxjs@7.8.2";
import { cpu, type Device } from "../devices/device.ts";
import { WebGpuDevice } from "../devices/webgpu_device.ts";
import type { Command, FromWorker, OpTiming } from "../devices/protocol.ts";
import type { KernelParams } from "../kernels/kernel.ts";
import { kernel } from "../kernels/registry.ts";
import { OpError } from "./errors.ts";

/**
 * One span of work, as plain serialisable data. Times are ms on the main thread's
 * `performance.now()` clock; with device timing, `start`/`end` of compute passes and copies
 * are their device timestamps put on that clock.
 */
export interface TraceEvent {
  /** The op's id (benchmark spans get ids of their own). */
  id: number;
  op: string;
  /** The device's name ("gpu:0", "cpu"). */
  device: string;
  lane: "compute" | "copy" | "host";
  /** When the op was created. */
  queued: number;
  start: number;
  end: number;
  /** Device timestamps (ns, the device's own clock), when the adapter has "timestamp-query". */
  gpuStart?: number;
  gpuEnd?: number;
  /** The shape of the op's first output. */
  shape?: readonly number[];
  bytes?: number;
  flops?: number;
  /** Ids of the ops that produced this op's inputs. */
  deps: number[];
  label?: string;
  error?: string;
}

/** How the engine runs ops. */
export type EngineMode = "parallel" | "serial";

/** Options of {@link configureEngine}. */
export interface EngineOptions {
  /**
   * "serial" runs each op to completion before the next (like MXNet's NaiveEngine).
   * @default {AUTOPAR_ENGINE, else "parallel"}
   */
  mode?: EngineMode;
  /**
   * Most ops in flight on one device. Completion is detected once per batch, no sooner than
   * about 11.5 ms in Deno, so small ops need many in flight.
   * @default {256}
   */
  maxOpsInFlight?: number;
  /**
   * Most bytes of outputs in flight on one device (one op may exceed it alone).
   * @default {1 GiB}
   */
  maxBytesInFlight?: number;
  /**
   * Time compute passes and copies with device timestamps (adapters with "timestamp-query"),
   * while someone observes `trace$()`.
   * @default {AUTOPAR_DEVICE_TIMING, else true}
   */
  deviceTiming?: boolean;
}

/** A tensor's storage as the engine sees it. */
export interface TensorRecord {
  readonly id: number;
  readonly device: Device;
  readonly shape: readonly number[];
  readonly bytes: number;
  /** pending: producer not sent; sent: producer on its lane; done: computed; failed. */
  state: "pending" | "sent" | "done" | "failed";
  /** The op that produces it, if any. */
  producer?: OpNode;
  /** Host tensors: the values once computed. */
  host?: Float32Array;
  /** The root failure when `state` is "failed". */
  error?: OpError;
  /** Ops not yet sent that read it. */
  unsentReaders: number;
  disposed: boolean;
  freed: boolean;
  /** Internal temporaries (readbacks, staging of uploads and device-to-device copies). */
  internal: boolean;
  /** An in-place op that will overwrite this storage once every earlier reader has gone. */
  writer?: OpNode;
  /** The in-place op's output now owns this storage: freeing this one frees nothing. */
  movedTo?: TensorRecord;
  settledWaiters?: (() => void)[];
}

/** One op as the engine schedules it. */
export interface OpNode {
  readonly id: number;
  readonly name: string;
  readonly device: Device;
  readonly kind: "run" | "read" | "write" | "host";
  readonly kernel?: string;
  readonly params?: KernelParams;
  readonly source?: string;
  readonly inputs: TensorRecord[];
  readonly outputs: TensorRecord[];
  /** The tensor an in-place op overwrites (also its last input): its output takes the storage. */
  readonly inPlace?: TensorRecord;
  readonly site: Error;
  readonly queued: number;
  readonly bytes: number;
  readonly flops?: number;
  readonly label?: string;
  /** A blocking op submitted before this one: this one waits until it has finished. */
  readonly after?: OpNode;
  state: "waiting" | "sent" | "done" | "failed";
  finishWaiters?: (() => void)[];
}

/** An op to submit. */
export interface OpRequest {
  name: string;
  device: Device;
  kind: OpNode["kind"];
  kernel?: string;
  params?: KernelParams;
  source?: string;
  inputs: TensorRecord[];
  outputShapes: (readonly number[])[];
  flops?: number;
  label?: string;
  internal?: boolean;
  /** Ops submitted after this one are not sent before it has finished (blocking copies). */
  blocking?: boolean;
  /**
   * Overwrite this tensor (a "run" op whose kernel is `inPlace`): the one output is a new
   * version that takes over its storage. The op waits until every op submitted earlier that
   * reads the old version has been sent to the same in-order lane or has finished; ops that
   * read the output wait for the op as for any producer.
   */
  inPlace?: TensorRecord;
}

class Lane {
  waiting: OpNode[] = [];
  inflight = 0;
  inflightBytes = 0;
  outbox: Command[] = [];
  readonly unfinished = new Set<OpNode>();
  readonly sent = new Map<number, OpNode>();
  constructor(readonly device: Device) {}
}

const elementsOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * ms of host ops run back to back before Worker replies get a turn. A timer turn costs
 * about 1-4 ms in Deno; one op per turn made a training step's four gradient sums take
 * about 10 ms instead of 1.
 */
const HOST_SLICE_MS = 2;

/** The engine of this process (there is one, like MXNet's). */
export class Engine {
  readonly events: Subject<TraceEvent> = new Subject<TraceEvent>();
  mode: EngineMode;
  maxOpsInFlight: number;
  maxBytesInFlight: number;
  deviceTiming: boolean;
  readonly #lanes = new Map<Device, Lane>();
  readonly #serial: OpNode[] = [];
  #errors: OpError[] = [];
  #nextId = 1;
  #pumpScheduled = false;
  #hostBusy = false;
  #serialBusy = 0;
  #fence: OpNode | undefined;
  #live = 0;
  #liveBytes = 0;

  /** Makes an engine with the given options. */
  constructor(options: EngineOptions = {}) {
    this.mode = options.mode ?? engineModeFromEnv();
    this.maxOpsInFlight = options.maxOpsInFlight ?? 256;
    this.maxBytesInFlight = options.maxBytesInFlight ?? 2 ** 30;
    this.deviceTiming = options.deviceTiming ?? deviceTimingFromEnv();
  }

  /** A fresh id for ops and tensors. */
  nextId(): number {
    return this.#nextId++;
  }

  /** A tensor that already holds its values on the host. */
  hostTensor(data: Float32Array, shape: readonly number[], device: Device): TensorRecord {
    return {
      id: this.nextId(),
      device,
      shape,
      bytes: data.byteLength,
      state: "done",
      host: data,
      unsentReaders: 0,
      disposed: false,
      freed: false,
      internal: false,
    };
  }

  /** Records an op and schedules it; returns its outputs at once. */
  submit(req: OpRequest): TensorRecord[] {
    const id = this.nextId();
    const outputs: TensorRecord[] = req.outputShapes.map((shape) => ({
      id: this.nextId(),
      device: req.kind === "read" ? cpu() : req.device,
      shape,
      bytes: elementsOf(shape) * 4,
      state: "pending",
      unsentReaders: 0,
      disposed: false,
      freed: false,
      internal: req.internal ?? false,
    }));
    const inputs = req.inPlace ? [...req.inputs, req.inPlace] : req.inputs;
    const op: OpNode = {
      id,
      name: req.name,
      device: req.device,
      kind: req.kind,
      kernel: req.kernel,
      params: req.params,
      source: req.source,
      inputs,
      outputs,
      inPlace: req.inPlace,
      site: new Error("created here"),
      queued: performance.now(),
      bytes: req.kind === "read" || req.kind === "write"
        ? req.inputs[0].bytes
        : outputs.reduce((a, o) => a + o.bytes, 0),
      flops: req.flops,
      label: req.label,
      after: this.#fence && this.#fence.state !== "done" && this.#fence.state !== "failed"
        ? this.#fence
        : undefined,
      state: "waiting",
    };
    if (req.blocking) this.#fence = op;
    for (const o of outputs) o.producer = op;
    for (const t of inputs) t.unsentReaders++;
    if (req.inPlace) req.inPlace.writer = op;
    const lane = this.#lane(req.device);
    lane.waiting.push(op);
    lane.unfinished.add(op);
    if (this.mode === "serial") this.#serial.push(op);
    this.#schedulePump();
    return outputs;
  }

  /** Marks a tensor disposed; its storage is freed once no queued op reads it. */
  dispose(t: TensorRecord): void {
    if (t.disposed) return;
    t.disposed = true;
    this.#maybeFree(t);
    this.#schedulePump();
  }

  /** Resolves once `t` is computed or has failed. */
  settled(t: TensorRecord): Promise<void> {
    if (t.state === "done" || t.state === "failed") return Promise.resolve();
    return new Promise((resolve) => (t.settledWaiters ??= []).push(resolve));
  }

  /**
   * Waits for the work queued so far on `device` (every device when none is given), then
   * throws one AggregateError of every asynchronous failure not yet reported there.
   */
  async synchronize(device?: Device): Promise<void> {
    const lanes = device ? [this.#lanes.get(device)].filter((l) => l !== undefined) : [
      ...this.#lanes.values(),
    ];
    const pending = lanes.flatMap((l) => [...l.unfinished]);
    await Promise.all(pending.map((op) => this.#finished(op)));
    this.throwErrors(device);
  }

  /** Throws the failures not yet reported (on `device`, or all) as one AggregateError. */
  throwErrors(device?: Device): void {
    const mine = this.#errors.filter((e) => !device || e.device === device.name);
    if (mine.length === 0) return;
    this.#errors = this.#errors.filter((e) => !mine.includes(e));
    const where = device ? ` on ${device.name}` : "";
    throw new AggregateError(
      mine,
      `${mine.length} asynchronous op${mine.length === 1 ? "" : "s"} failed${where}: ${
        mine.map((e) => e.message).join("; ")
      }`,
    );
  }

  /** Reports `error` as delivered elsewhere (a rejected `data()`), so it is not thrown twice. */
  markReported(error: OpError): void {
    this.#errors = this.#errors.filter((e) => e !== error);
  }

  /** Ops in flight and waiting, per device name: for dashboards and tests. */
  load(): Record<string, { waiting: number; inflight: number; inflightBytes: number }> {
    const out: Record<string, { waiting: number; inflight: number; inflightBytes: number }> = {};
    for (const [d, l] of this.#lanes) {
      out[d.name] = {
        waiting: l.waiting.length,
        inflight: l.inflight,
        inflightBytes: l.inflightBytes,
      };
    }
    return out;
  }

  /** Device buffers allocated and not yet freed, and their bytes (for tests and dashboards). */
  liveBuffers(): { count: number; bytes: number } {
    return { count: this.#live, bytes: this.#liveBytes };
  }

  #countLive(t: TensorRecord, delta: 1 | -1): void {
    this.#live += delta;
    this.#liveBytes += delta * t.bytes;
  }

  /** Emits a span that is not an op (benchmark blocks), on the host lane. */
  recordSpan(op: string, start: number, end: number, label?: string): void {
    this.events.next({
      id: this.nextId(),
      op,
      device: "cpu",
      lane: "host",
      queued: start,
      start,
      end,
      deps: [],
      label,
    });
  }

  #finished(op: OpNode): Promise<void> {
    if (op.state === "done" || op.state === "failed") return Promise.resolve();
    return new Promise((resolve) => (op.finishWaiters ??= []).push(resolve));
  }

  #lane(device: Device): Lane {
    let lane = this.#lanes.get(device);
    if (!lane) {
      lane = new Lane(device);
      this.#lanes.set(device, lane);
      if (device instanceof WebGpuDevice) {
        const l = lane;
        device.onMessage = (msg) => this.#onWorkerMessage(l, msg);
      }
    }
    return lane;
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  /** Sends every op that may go, then flushes each lane's batch. */
  #pump(): void {
    if (this.mode === "serial") this.#pumpSerial();
    else {
      for (const lane of this.#lanes.values()) this.#pumpLane(lane);
    }
    // Timestamps are taken only while someone reads the events.
    const timing = this.deviceTiming && this.events.observed;
    for (const lane of this.#lanes.values()) {
      if (lane.outbox.length > 0 && lane.device instanceof WebGpuDevice) {
        // In batches of at most MAX_BATCH_OPS, so the Worker encodes the next batch while
        // the device runs this one.
        for (let i = 0; i < lane.outbox.length; i += MAX_BATCH_OPS) {
          lane.device.send(lane.outbox.slice(i, i + MAX_BATCH_OPS), timing);
        }
        lane.outbox = [];
      }
    }
    this.#runHost();
  }

  #pumpLane(lane: Lane): void {
    let kept = 0;
    const waiting = lane.waiting;
    for (let i = 0; i < waiting.length; i++) {
      const op = waiting[i];
      if (lane.inflight >= this.maxOpsInFlight) {
        // Full: nothing more can go now, so the rest keeps its place unexamined (a long
        // queue is not rescanned on every completion).
        if (kept !== i) waiting.copyWithin(kept, i);
        kept += waiting.length - i;
        break;
      }
      const full = lane.inflight > 0 && lane.inflightBytes + op.bytes > this.maxBytesInFlight;
      const ready = this.#ready(op);
      if (ready === "failed") this.#skip(op);
      else if (ready && !full) this.#send(lane, op);
      else waiting[kept++] = op;
    }
    waiting.length = kept;
  }

  #pumpSerial(): void {
    while (this.#serialBusy === 0 && this.#serial.length > 0) {
      const op = this.#serial[0];
      const ready = this.#ready(op);
      if (!ready) return;
      this.#serial.shift();
      const lane = this.#lane(op.device);
      lane.waiting.splice(lane.waiting.indexOf(op), 1);
      if (ready === "failed") this.#skip(op);
      else {
        this.#serialBusy++;
        this.#send(lane, op);
      }
    }
  }

  /** true when every input is where the op's lane can read it; "failed" when one failed. */
  #ready(op: OpNode): boolean | "failed" {
    if (op.after && op.after.state !== "done" && op.after.state !== "failed") return false;
    // Write after read: every other reader of the old version has been sent or has finished
    // (only the op itself still counts), so none can run after the overwrite.
    if (op.inPlace && op.inPlace.state !== "failed" && op.inPlace.unsentReaders > 1) return false;
    for (const t of op.inputs) {
      if (t.state === "failed") return "failed";
      if (t.device.kind === "cpu" || t.device !== op.device) {
        if (t.state !== "done") return false;
      } else if (t.state === "pending") return false;
    }
    return true;
  }

  #send(lane: Lane, op: OpNode): void {
    op.state = "sent";
    this.#inflight(lane, op, 1);
    lane.sent.set(op.id, op);
    if (lane.device instanceof WebGpuDevice) {
      if (op.kind === "run") {
        lane.outbox.push({
          t: "run",
          op: op.id,
          kernel: op.kernel!,
          params: op.params!,
          source: op.source,
          // The overwritten tensor is bound as the output only (never read-only as well).
          inputs: (op.inPlace ? op.inputs.slice(0, -1) : op.inputs).map((t) => t.id),
          outputs: op.outputs.map((t) => ({ id: t.id, bytes: t.bytes })),
          inPlace: op.inPlace?.id,
        });
        if (op.inPlace) op.inPlace.movedTo = op.outputs[0];
      } else if (op.kind === "read") {
        lane.outbox.push({ t: "read", op: op.id, buf: op.inputs[0].id, bytes: op.inputs[0].bytes });
      } else if (op.kind === "write") {
        const src = op.inputs[0];
        // An internal staging copy is handed over; a user's host tensor is copied first.
        const data = src.internal && src.unsentReaders === 1 ? src.host! : src.host!.slice();
        if (src.internal) src.host = undefined;
        lane.outbox.push({
          t: "write",
          op: op.id,
          buf: op.outputs[0].id,
          data: data.buffer as ArrayBuffer,
        });
      }
    }
    for (const o of op.outputs) {
      o.state = "sent";
      if (o.device instanceof WebGpuDevice) this.#countLive(o, 1);
    }
    // A Worker frees in order after the op; the host runs the op later, so it lets go then.
    if (lane.device.kind !== "cpu") this.#release(op.inputs);
    for (const o of op.outputs) this.#maybeFree(o);
  }

  #release(inputs: TensorRecord[]): void {
    for (const t of inputs) {
      t.unsentReaders--;
      // The last other reader has gone: an in-place writer waiting on it may go now.
      if (t.unsentReaders === 1 && t.writer?.state === "waiting") this.#schedulePump();
      this.#maybeFree(t);
    }
  }

  /** Keeps `t`'s storage until {@link Engine.release} (a pending `data()` of a host tensor). */
  retain(t: TensorRecord): void {
    t.unsentReaders++;
  }

  /** Lets go of a {@link Engine.retain}. */
  release(t: TensorRecord): void {
    this.#release([t]);
  }

  /**
   * Runs host ops in a macrotask of their own, so Worker replies and user code interleave
   * with host work: ready ones back to back for up to {@link HOST_SLICE_MS} (a training
   * step's gradient sums), each followed by a pump that sends the work it unblocks.
   */
  #runHost(): void {
    if (this.#hostBusy) return;
    const lane = [...this.#lanes.values()].find((l) =>
      l.device.kind === "cpu" && [...l.sent.values()].some((op) => op.state === "sent")
    );
    if (!lane) return;
    this.#hostBusy = true;
    setTimeout(() => {
      const start = performance.now();
      for (;;) {
        const op = [...lane.sent.values()].find((o) => o.state === "sent");
        if (op) this.#executeHost(lane, op);
        if (!op || performance.now() - start >= HOST_SLICE_MS) break;
        this.#pump(); // #runHost returns at once inside it: the host is busy
      }
      this.#hostBusy = false;
      this.#schedulePump();
    }, 0);
  }

  #executeHost(lane: Lane, op: OpNode): void {
    const start = performance.now();
    try {
      let results: Float32Array[];
      if (op.kind === "run") {
        if (op.source !== undefined) throw new Error("custom WGSL kernels cannot run on the host");
        results = kernel(op.kernel!).cpu(op.inputs.map((t) => t.host!), op.params!);
      } else results = [op.inputs[0].host!.slice()];
      this.#release(op.inputs);
      op.outputs.forEach((o, i) => (o.host = results[i]));
      this.#complete(lane, op, start, performance.now());
    } catch (e) {
      this.#release(op.inputs);
      this.#fail(
        lane,
        op,
        e instanceof Error ? e.message : String(e),
        false,
        start,
        performance.now(),
        e,
      );
    }
  }

  #onWorkerMessage(lane: Lane, msg: FromWorker): void {
    const origin = performance.timeOrigin;
    if (msg.type === "done") {
      const timings = msg.timings && new Map(msg.timings.map((t) => [t.op, t]));
      for (const id of msg.ops) {
        const op = lane.sent.get(id);
        if (!op) continue;
        const t = timings?.get(id);
        if (t) this.#complete(lane, op, t.start - origin, t.end - origin, t);
        else this.#complete(lane, op, msg.start - origin, msg.end - origin);
      }
      for (const f of msg.failures) {
        const op = lane.sent.get(f.op);
        if (op) this.#fail(lane, op, f.message, f.skipped, msg.start - origin, msg.end - origin);
      }
    } else if (msg.type === "read") {
      const op = lane.sent.get(msg.op);
      if (op) {
        op.outputs[0].host = new Float32Array(msg.data);
        this.#complete(lane, op, msg.start - origin, msg.end - origin, msg);
      }
    } else if (msg.type === "read-failed") {
      const op = lane.sent.get(msg.op);
      const now = performance.now();
      if (op) this.#fail(lane, op, msg.message, false, now, now);
    }
    this.#schedulePump();
  }

  #complete(
    lane: Lane,
    op: OpNode,
    start: number,
    end: number,
    device?: Pick<OpTiming, "gpuStart" | "gpuEnd">,
  ): void {
    for (const o of op.outputs) {
      o.state = "done";
      this.#settle(o);
      this.#maybeFree(o);
    }
    this.#finish(lane, op, "done", start, end, undefined, device);
  }

  #fail(
    lane: Lane,
    op: OpNode,
    message: string,
    skipped: boolean,
    start: number,
    end: number,
    cause?: unknown,
  ): void {
    const inherited = op.inputs.find((t) => t.state === "failed")?.error;
    const error = skipped && inherited ? inherited : new OpError(message, {
      op: op.name,
      opId: op.id,
      device: op.device.name,
      site: op.site,
      cause,
    });
    if (!(skipped && inherited)) this.#errors.push(error);
    for (const o of op.outputs) {
      o.state = "failed";
      o.error = error;
      this.#settle(o);
      this.#maybeFree(o);
    }
    this.#finish(lane, op, "failed", start, end, error.message);
  }

  /** An op whose input failed before it was sent: it fails the same way, without running. */
  #skip(op: OpNode): void {
    const lane = this.#lane(op.device);
    op.state = "sent";
    this.#inflight(lane, op, 1);
    this.#release(op.inputs);
    for (const o of op.outputs) if (o.device instanceof WebGpuDevice) this.#countLive(o, 1);
    const now = performance.now();
    if (this.mode === "serial") this.#serialBusy++;
    this.#fail(lane, op, "an input failed", true, now, now);
  }

  #finish(
    lane: Lane,
    op: OpNode,
    state: "done" | "failed",
    start: number,
    end: number,
    error?: string,
    device?: Pick<OpTiming, "gpuStart" | "gpuEnd">,
  ): void {
    op.state = state;
    this.#inflight(lane, op, -1);
    lane.sent.delete(op.id);
    lane.unfinished.delete(op);
    if (this.#serialBusy > 0) this.#serialBusy--;
    for (const w of op.finishWaiters ?? []) w();
    op.finishWaiters = undefined;
    if (this.events.observed) {
      this.events.next({
        id: op.id,
        op: op.name,
        device: op.device.name,
        lane: op.kind === "run"
          ? (op.device.kind === "cpu" ? "host" : "compute")
          : op.kind === "host"
          ? "host"
          : "copy",
        queued: op.queued,
        start,
        end,
        gpuStart: device?.gpuStart,
        gpuEnd: device?.gpuEnd,
        shape: op.outputs[0]?.shape,
        bytes: op.bytes,
        flops: op.flops,
        deps: op.inputs.flatMap((t) => t.producer ? [t.producer.id] : []),
        label: op.label,
        error,
      });
    }
  }

  /** Counts an op into or out of its lane's work in flight; a busy Worker keeps the process alive. */
  #inflight(lane: Lane, op: OpNode, delta: 1 | -1): void {
    lane.inflight += delta;
    lane.inflightBytes += delta * op.bytes;
    if (lane.device instanceof WebGpuDevice && lane.inflight === (delta > 0 ? 1 : 0)) {
      lane.device.setBusy(delta > 0);
    }
  }

  /** Switches between parallel and serial mode; ops already waiting keep their program order. */
  setMode(mode: EngineMode): void {
    if (mode === this.mode) return;
    this.mode = mode;
    this.#serial.length = 0;
    if (mode === "serial") {
      const waiting = [...this.#lanes.values()].flatMap((l) => l.waiting);
      this.#serial.push(...waiting.sort((a, b) => a.id - b.id));
    }
    this.#schedulePump();
  }

  #settle(t: TensorRecord): void {
    for (const w of t.settledWaiters ?? []) w();
    t.settledWaiters = undefined;
  }

  #maybeFree(t: TensorRecord): void {
    if (!t.disposed || t.freed || t.unsentReaders > 0 || t.state === "pending") return;
    t.freed = true;
    if (t.movedTo && t.device instanceof WebGpuDevice) this.#countLive(t, -1);
    else if (t.device instanceof WebGpuDevice) {
      this.#countLive(t, -1);
      this.#lane(t.device).outbox.push({ t: "free", buf: t.id });
      this.#schedulePump();
    } else t.host = undefined;
  }
}

/** Most ops in one batch sent to a device's Worker. */
const MAX_BATCH_OPS = 64;

function deviceTimingFromEnv(): boolean {
  const v = Deno.env.get("AUTOPAR_DEVICE_TIMING");
  if (v === undefined || v === "" || v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new RangeError(`Cannot use AUTOPAR_DEVICE_TIMING="${v}": it must be 1 or 0`);
}

function engineModeFromEnv(): EngineMode {
  const v = Deno.env.get("AUTOPAR_ENGINE");
  if (v === undefined || v === "" || v === "parallel") return "parallel";
  if (v === "serial") return "serial";
  throw new RangeError(`Cannot use AUTOPAR_ENGINE="${v}": it must be "parallel" or "serial"`);
}

let current: Engine | undefined;

/** The process's engine, made on first use. */
export function engine(): Engine {
  return current ??= new Engine();
}

/**
 * Changes how the engine runs ops; takes effect for ops submitted afterwards. Throws a
 * RangeError for a bad value.
 *
 * @example
 * ```ts
 * import { configureEngine } from "./engine.ts";
 * configureEngine({ mode: "serial" });
 * configureEngine({ mode: "parallel" });
 * configureEngine({ deviceTiming: false }); // events keep the batch's times
 * configureEngine({ deviceTiming: true });
 * ```
 */
export function configureEngine(options: EngineOptions): void {
  const e = engine();
  if (options.mode !== undefined) {
    if (options.mode !== "serial" && options.mode !== "parallel") {
      throw new RangeError(`Cannot use engine mode "${options.mode}": use "parallel" or "serial"`);
    }
    e.setMode(options.mode);
  }
  for (const key of ["maxOpsInFlight", "maxBytesInFlight"] as const) {
    const v = options[key];
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v < 1) {
      throw new RangeError(`Cannot set ${key} to ${v}: it must be >= 1`);
    }
    e[key] = v;
  }
  if (options.deviceTiming !== undefined) {
    if (typeof options.deviceTiming !== "boolean") {
      throw new RangeError(
        `Cannot set deviceTiming to ${options.deviceTiming}: it must be a boolean`,
      );
    }
    e.deviceTiming = options.deviceTiming;
  }
}
