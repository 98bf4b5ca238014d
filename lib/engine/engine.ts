/**
 * The dependency engine: records each op's inputs and outputs, sends an op to its device's
 * in-order lane as soon as its inputs are on that device, waits for cross-device inputs,
 * bounds the work in flight (lanes.ts), and surfaces asynchronous failures at
 * synchronisation points (errors.ts). It talks to devices only through the device contract
 * (devices/runtime.ts): batches of commands out, reports back.
 *
 * @module
 */
import { Subject } from "npm:rxjs@7.8.2";
import { cpu, type Device } from "../devices/device.ts";
import type { DefineCommand, ForgetCommand, OpTiming } from "../devices/protocol.ts";
import { type Report, runtimeFor, runtimeOf } from "../devices/runtime.ts";
import { hostRuntime } from "../devices/host_runtime.ts";
import { HostStore } from "../devices/host_store.ts";
import { capabilitiesOf, isHostVisible } from "../devices/capabilities.ts";
import type { TraceEvent } from "./trace_event.ts";
import { creationSite, ErrorLog, OpError } from "./errors.ts";
import { Lane } from "./lanes.ts";
import { readiness } from "./dependencies.ts";
import {
  deviceTimingFromEnv,
  type EngineMode,
  engineModeFromEnv,
  type EngineOptions,
} from "./options.ts";
import { elementsOf, onDevice, type OpNode, type OpRequest, type TensorRecord } from "./records.ts";
import { type CaptureTape, supersede } from "./capture.ts";

export type { TraceEvent } from "./trace_event.ts";
export type { EngineMode, EngineOptions } from "./options.ts";
export type { OpNode, OpRequest, TensorRecord } from "./records.ts";

/** The engine of this process (there is one, like MXNet's). */
export class Engine {
  readonly events: Subject<TraceEvent> = new Subject<TraceEvent>();
  mode: EngineMode;
  maxOpsInFlight: number;
  maxBytesInFlight: number;
  deviceTiming: boolean;
  readonly #lanes = new Map<Device, Lane>();
  readonly #serial: OpNode[] = [];
  readonly #errors = new ErrorLog();
  #nextId = 1;
  #pumpScheduled = false;
  #serialBusy = 0;
  #fence: OpNode | undefined;
  #live = 0;
  #liveBytes = 0;
  /**
   * The label of ops submitted without one, for the trace: autograd sets `"backward"`
   * while it queues a backward pass, so the task stream tells the passes apart.
   */
  phase: string | undefined = undefined;
  /** Set while `capture()` records a step: told of every op, host constant and dispose. */
  capture: CaptureTape | undefined = undefined;
  /** The values of every host tensor; host-visible runtimes get it (useHostStore). */
  readonly hostStore: HostStore = new HostStore();

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

  /** A tensor on the host that already holds its values. */
  hostTensor(data: Float32Array, shape: readonly number[]): TensorRecord {
    const t: TensorRecord = {
      id: this.nextId(),
      device: cpu(),
      shape,
      bytes: data.byteLength,
      state: "done",
      unsentReaders: 0,
      disposed: false,
      freed: false,
      internal: false,
    };
    this.hostStore.put(t.id, data);
    this.capture?.constant(t, data);
    return t;
  }

  /** The values of a computed host tensor (shared: copy them before handing them out). */
  hostValues(t: TensorRecord): Float32Array {
    const values = this.hostStore.get(t.id);
    if (!values) throw new Error(`Cannot read t${t.id}: the host holds no values for it`);
    return values;
  }

  /** Records an op and schedules it; returns its outputs at once. */
  submit(req: OpRequest): TensorRecord[] {
    const id = this.nextId();
    const outputs: TensorRecord[] = req.outputShapes.map((shape) => ({
      id: this.nextId(),
      device: req.outputDevice ?? (req.kind === "read" ? cpu() : req.device),
      shape,
      bytes: elementsOf(shape) * 4,
      state: "pending",
      unsentReaders: 0,
      disposed: false,
      freed: false,
      internal: req.internal ?? false,
    }));
    const inputs = req.inPlace ? [...req.inputs, req.inPlace] : req.inputs;
    const adopts = req.segment?.adopts.flatMap((k) => k === undefined ? [] : [req.inputs[k]]);
    const op: OpNode = {
      id,
      name: req.name,
      device: req.device,
      kind: req.kind,
      kernel: req.kernel,
      params: req.params,
      inputs,
      outputs,
      inPlace: req.inPlace,
      segment: req.segment,
      adopts,
      prev: req.prev,
      site: req.site ?? new Error("created here"),
      queued: performance.now(),
      bytes: req.kind === "read" || req.kind === "write"
        ? req.inputs[0].bytes
        : outputs.reduce((a, o) => a + o.bytes, 0),
      flops: req.flops,
      label: req.label ?? this.phase,
      after: this.#fence && this.#fence.state !== "done" && this.#fence.state !== "failed"
        ? this.#fence
        : undefined,
      state: "waiting",
    };
    if (req.blocking) this.#fence = op;
    if (req.inPlace) supersede(req.inPlace, outputs[0]);
    req.segment?.adopts.forEach((k, i) => {
      if (k !== undefined) supersede(req.inputs[k], outputs[i]);
    });
    this.capture?.op({ ...req, label: op.label, site: op.site }, outputs);
    for (const o of outputs) o.producer = op;
    for (const t of inputs) t.unsentReaders++;
    if (req.inPlace) req.inPlace.writer = op;
    for (const t of adopts ?? []) t.writer = op;
    const lane = this.#lane(req.device);
    lane.waiting.push(op);
    lane.unfinished.add(op);
    if (this.mode === "serial") this.#serial.push(op);
    this.#schedulePump();
    return outputs;
  }

  /**
   * Sends `cmd` (a device program's definition, or its end) to `device`, in order with the
   * ops sent there; with `after`, not before that op has been sent.
   */
  command(device: Device, cmd: DefineCommand | ForgetCommand, after?: OpNode): void {
    const lane = this.#lane(device);
    if (after && after.state === "waiting") (after.then ??= []).push(cmd);
    else lane.outbox.push(cmd);
    this.#schedulePump();
  }

  /** Marks a tensor disposed; its storage is freed once no queued op reads it. */
  dispose(t: TensorRecord): void {
    if (t.disposed) return;
    this.capture?.dispose(t);
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
    // Lanes of devices that are gone and have nothing left to report are dropped.
    for (const l of lanes) {
      if (l.runtime.lost !== undefined && l.unfinished.size === 0) this.#lanes.delete(l.device);
    }
    this.throwErrors(device);
    const lost = device && this.deviceProblem(device);
    if (lost) throw new Error(`Cannot synchronize ${device.name}: ${lost}`);
  }

  /**
   * Why ops cannot run on `device` (it is not a device, or it was closed or lost), or
   * `undefined` when they can.
   */
  deviceProblem(device: unknown): string | undefined {
    if (device === cpu()) return undefined;
    const runtime = device !== null && typeof device === "object"
      ? runtimeFor(device as Device)
      : undefined;
    if (!runtime) return "it is not a device: use cpu() or a device from tryAllGpus()/tryGpu()";
    return runtime.lost;
  }

  /** Throws the failures not yet reported (on `device`, or all) as one AggregateError. */
  throwErrors(device?: Device): void {
    this.#errors.throwFor(device);
  }

  /** Reports `error` as delivered elsewhere (a rejected `data()`), so it is not thrown twice. */
  markReported(error: OpError): void {
    this.#errors.markReported(error);
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
      const runtime = runtimeOf(device);
      const l = new Lane(device, runtime);
      const host = hostRuntime();
      if (runtime === host) host.onSliceEnd = () => this.#schedulePump();
      runtime.useHostStore?.(this.hostStore);
      runtime.onReport = (report) => this.#onReport(l, report);
      this.#lanes.set(device, l);
      lane = l;
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
      for (const lane of this.#lanes.values()) {
        lane.admit(this, (op) => this.#send(lane, op), (op) => this.#skip(op));
      }
    }
    // Timestamps are taken only while someone reads the events.
    const timing = this.deviceTiming && this.events.observed;
    // While host ops run a slice, devices' batches wait for its end (see HostRuntime.inSlice).
    const hold = hostRuntime().inSlice;
    for (const lane of this.#lanes.values()) {
      if (!hold || isHostVisible(lane.device)) {
        lane.flush(timing && capabilitiesOf(lane.device).timestamps);
      }
    }
  }

  #pumpSerial(): void {
    while (this.#serialBusy === 0 && this.#serial.length > 0) {
      const op = this.#serial[0];
      const ready = readiness(op);
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

  #send(lane: Lane, op: OpNode): void {
    op.state = "sent";
    lane.count(op, 1);
    lane.sent.set(op.id, op);
    if (op.kind === "run") {
      lane.outbox.push({
        t: "run",
        op: op.id,
        kernel: op.kernel!,
        params: op.params!,
        // The overwritten tensor is bound as the output only (never read-only as well).
        inputs: (op.inPlace ? op.inputs.slice(0, -1) : op.inputs).map((t) => t.id),
        outputs: op.outputs.map((t) => ({ id: t.id, bytes: t.bytes })),
        inPlace: op.inPlace?.id,
      });
      if (op.inPlace) op.inPlace.movedTo = op.outputs[0];
    } else if (op.kind === "program") {
      const seg = op.segment!;
      lane.outbox.push({
        t: "exec",
        op: op.id,
        program: seg.program,
        segment: seg.segment,
        inputs: op.inputs.map((t) => t.id),
        outputs: op.outputs.map((t) => t.id),
      });
      seg.adopts.forEach((k, i) => {
        if (k !== undefined) op.inputs[k].movedTo = op.outputs[i];
      });
    } else if (op.kind === "read") {
      lane.outbox.push({ t: "read", op: op.id, buf: op.inputs[0].id, bytes: op.inputs[0].bytes });
    } else {
      const src = op.inputs[0];
      // An internal staging copy is handed over; a user's host tensor is copied first.
      const data = src.internal && src.unsentReaders === 1
        ? this.hostStore.take(src.id)!
        : this.hostValues(src).slice();
      lane.outbox.push({
        t: "write",
        op: op.id,
        buf: op.outputs[0].id,
        data: data.buffer as ArrayBuffer,
      });
    }
    if (op.then) lane.outbox.push(...op.then);
    for (const o of op.outputs) {
      o.state = "sent";
      if (onDevice(o)) this.#countLive(o, 1);
    }
    // Every runtime runs its commands in order, so a free sent after this op comes after it.
    this.#release(op.inputs);
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

  #onReport(lane: Lane, msg: Report): void {
    const origin = performance.timeOrigin;
    if (msg.type === "lost") {
      // Nothing sent there will answer: each op fails with the reason. Ops still waiting
      // fail the same way when they are sent (the runtime answers every batch with this).
      const now = performance.now();
      for (const op of [...lane.sent.values()]) this.#fail(lane, op, msg.message, false, now, now);
    } else if (msg.type === "done") {
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
        if (!op) continue;
        const start = msg.start - origin;
        if (f.kept) {
          // Its outputs hold their old values (a collective that could not finish): they
          // are used as they are, and the failure surfaces at the next synchronisation.
          this.#errors.add(this.#opError(op, f.message, f.cause, f.inner));
          this.#complete(lane, op, start, msg.end - origin);
        } else {
          this.#fail(lane, op, f.message, f.skipped, start, msg.end - origin, f.cause, f.inner);
        }
      }
    } else if (msg.type === "read") {
      const op = lane.sent.get(msg.op);
      if (op) {
        this.hostStore.put(op.outputs[0].id, new Float32Array(msg.data));
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
    inner?: number,
  ): void {
    const inherited = op.inputs.find((t) => t.state === "failed")?.error;
    const error = skipped && inherited ? inherited : this.#opError(op, message, cause, inner);
    if (!(skipped && inherited)) this.#errors.add(error);
    for (const o of op.outputs) {
      o.state = "failed";
      o.error = error;
      this.#settle(o);
      this.#maybeFree(o);
    }
    this.#finish(lane, op, "failed", start, end, error.message);
  }

  /** The error of `op`; a segment's names the recorded op that failed in it, and its site. */
  #opError(op: OpNode, message: string, cause?: unknown, inner?: number): OpError {
    const named = inner === undefined ? undefined : op.segment?.ops[inner];
    if (named?.fused) {
      const list = named.fused.map((o) => `${o.name} created at ${creationSite(o.site)}`);
      message += `; the fused kernel computes ${list.join(", ")}`;
    }
    return new OpError(message, {
      op: named ? `${named.name} (replayed)` : op.name,
      opId: op.id,
      device: op.device.name,
      site: named?.site ?? op.site,
      cause,
    });
  }

  /** An op whose input failed before it was sent: it fails the same way, without running. */
  #skip(op: OpNode): void {
    const lane = this.#lane(op.device);
    op.state = "sent";
    lane.count(op, 1);
    if (op.then) lane.outbox.push(...op.then);
    this.#release(op.inputs);
    for (const o of op.outputs) if (onDevice(o)) this.#countLive(o, 1);
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
    // A finished fence holds nothing back; kept, it would keep its outputs' versions alive
    // (a parameter's first copy to a device, and each version since, through `successor`).
    if (this.#fence === op) this.#fence = undefined;
    lane.count(op, -1);
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
        lane: op.kind === "read" || op.kind === "write"
          ? "copy"
          : isHostVisible(op.device)
          ? "host"
          : "compute",
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
        ...(op.segment && { kernels: op.segment.ops.map((o) => o.name) }),
        error,
      });
    }
    // Nothing reads these once the op has finished; kept, they would chain every record to
    // all that came before it (a parameter to each of its versions since training began).
    // An overwritten version's `writer` would chain it to all the versions after it.
    for (const t of [op.inPlace, ...(op.adopts ?? [])]) if (t?.writer === op) t.writer = undefined;
    op.inputs = [];
    op.inPlace =
      op.adopts =
      op.prev =
      op.after =
        undefined;
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
    if (onDevice(t)) this.#countLive(t, -1);
    // An overwritten version's storage now belongs to the new version. Dropped, the link
    // would chain a version someone holds (a captured step's) to every version after it.
    if (t.movedTo) return void (t.movedTo = undefined);
    this.#lane(t.device).outbox.push({ t: "free", buf: t.id });
    this.#schedulePump();
  }
}

let current: Engine | undefined;

/** The process's engine, made on first use. */
export function engine(): Engine {
  return current ??= new Engine();
}
