/**
 * Experiment runs started from the dashboard: the request is validated against the
 * devices' limits, one run goes at a time, and the latest run keeps its trace events for
 * the Chrome trace. A "train" run trains the chapter's MLP on MNIST over all the devices
 * (the host summing the gradients), its record growing by one line per epoch.
 *
 * @module
 */
import { cpu, type Device } from "../lib/devices/device.ts";
import { copyHeavy, runAndCopy } from "../lib/experiments/copy_overlap.ts";
import { gpu1Gpu2 } from "../lib/experiments/gpu1_gpu2.ts";
import { summarize } from "../lib/trace/summarize.ts";
import { trace$ } from "../lib/trace/trace.ts";
import { mlp, Trainer } from "../lib/train/trainer.ts";
import { loadMnist } from "../lib/train/mnist.ts";
import { trainEpoch } from "../lib/train/epoch.ts";
import { gradientTraffic } from "../lib/train/traffic.ts";
import type {
  Experiment,
  RunLimits,
  RunRecord,
  RunRequest,
  TraceEvent,
} from "../components/protocol.ts";
import { labelsOf, SECTIONS } from "../components/timings.ts";

/** A request that cannot start: its message says why, with the value. */
export class RunRequestError extends Error {
  /** The HTTP status that fits: 400 for a bad value, 409 while another run goes. */
  readonly status: 400 | 409;
  /** Makes the error. */
  constructor(message: string, status: 400 | 409 = 400) {
    super(message);
    this.name = "RunRequestError";
    this.status = status;
  }
}

/** Options of {@link RunManager}. */
export interface RunManagerOptions {
  /** Where experiments run: [GPU1, GPU2]; empty runs them on the host. */
  devices: readonly Device[];
  /**
   * Most products (or stream items) a run may ask for.
   * @default {1000}
   */
  maxIters?: number;
  /**
   * Most trace events kept of the latest run.
   * @default {500_000}
   */
  maxRunEvents?: number;
  /** Called when a run starts, changes (a "train" run: after each epoch) or ends. */
  onChange?: (run: RunRecord) => void;
  /**
   * Training digits per epoch of a "train" run (the first ones of the 8,000).
   * @default {8000}
   */
  trainSamples?: number;
}

const EXPERIMENTS: readonly Experiment[] = [...SECTIONS.map((s) => s.experiment), "train"];
/** Learning rate of a "train" run (that of `deno task train`). */
const TRAIN_LR = 0.5;

/** Starts experiments one at a time and remembers their records. */
export class RunManager {
  readonly devices: readonly Device[];
  readonly limits: RunLimits;
  readonly #records = new Map<string, RunRecord>();
  readonly #maxRunEvents: number;
  readonly #onChange?: (run: RunRecord) => void;
  readonly #trainSamples: number;
  #mnist: ReturnType<typeof loadMnist> | undefined;
  #current: Promise<void> | undefined;
  #latest: RunRecord | undefined;
  #latestEvents: TraceEvent[] = [];
  #next = 1;

  /** Makes a manager for `devices`; the largest size follows their storage binding limit. */
  constructor(options: RunManagerOptions) {
    this.devices = options.devices.length > 0 ? options.devices : [cpu()];
    this.#maxRunEvents = options.maxRunEvents ?? 500_000;
    this.#onChange = options.onChange;
    this.#trainSamples = options.trainSamples ?? 8000;
    const bindable = Math.min(
      ...this.devices.map((d) =>
        Math.min(d.info.maxStorageBufferBindingSize, d.info.maxBufferSize)
      ),
    );
    const software = this.devices[0].info.software;
    this.limits = {
      maxSize: Math.floor(Math.sqrt(bindable / 4)),
      maxIters: options.maxIters ?? 1000,
      maxBatch: this.#trainSamples,
      maxEpochs: 100,
      defaults: software
        ? {
          "gpu1-gpu2": { size: 256, iters: 20 },
          "run-and-copy": { size: 256, iters: 20 },
          "copy-heavy": { size: 512, iters: 20 },
          "train": { size: 256, iters: 1 },
        }
        : {
          "gpu1-gpu2": { size: 4000, iters: 50 },
          "run-and-copy": { size: 4000, iters: 50 },
          "copy-heavy": { size: 4096, iters: 200 },
          "train": { size: 256, iters: 10 },
        },
    };
  }

  /** The run going now, if any. */
  get busy(): boolean {
    return this.#current !== undefined;
  }

  /** The record of run `id`. */
  get(id: string): RunRecord | undefined {
    const r = this.#records.get(id);
    return r && { ...r };
  }

  /** The latest run, if any. */
  latest(): RunRecord | undefined {
    return this.#latest && { ...this.#latest };
  }

  /** The trace events of the latest run (up to the limit). */
  latestEvents(): readonly TraceEvent[] {
    return this.#latestEvents;
  }

  /**
   * Checks a parsed request body; throws a {@link RunRequestError} (400) that names the bad
   * value, such as a size whose tensor would exceed the device's storage binding limit. For
   * "train", `size` is the minibatch (at least one sample per device) and `iters` the epochs.
   */
  validate(body: unknown): RunRequest {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new RunRequestError(
        `Cannot start a run from ${JSON.stringify(body)}: send a JSON object ` +
          `{"experiment", "size", "iters"}`,
      );
    }
    const { experiment, size, iters } = body as Record<string, unknown>;
    if (typeof experiment !== "string" || !EXPERIMENTS.includes(experiment as Experiment)) {
      throw new RunRequestError(
        `Cannot start experiment ${JSON.stringify(experiment)}: it must be one of ` +
          EXPERIMENTS.map((e) => `"${e}"`).join(", "),
      );
    }
    const whole = (name: string, v: unknown, max: number, min = 1) => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
        throw new RunRequestError(
          `Cannot start a run with ${name} ${
            JSON.stringify(v)
          }: ${name} must be a whole number >= ${min}`,
        );
      }
      if (v > max) {
        const why = name === "size" && experiment !== "train"
          ? `a ${v}x${v} float32 tensor is ${v * v * 4} bytes, more than the ` +
            `${this.devices[0].name} adapter's maxStorageBufferBindingSize of ` +
            `${this.devices[0].info.maxStorageBufferBindingSize} bytes (largest size: ${max})`
          : `${name} must be at most ${max}` +
            (name === "size" ? ` (the training digits of an epoch)` : "");
        throw new RunRequestError(`Cannot start a run with ${name} ${v}: ${why}`);
      }
      return v;
    };
    if (experiment === "train") {
      const devices = this.devices.length;
      const batch = whole("size", size, this.limits.maxBatch, devices);
      return { experiment, size: batch, iters: whole("iters", iters, this.limits.maxEpochs) };
    }
    return {
      experiment: experiment as Experiment,
      size: whole("size", size, this.limits.maxSize),
      iters: whole("iters", iters, this.limits.maxIters),
    };
  }

  /**
   * Starts a validated run and returns its record at once; throws a
   * {@link RunRequestError} (409) while another run goes.
   */
  start(request: RunRequest): RunRecord {
    if (this.#current) {
      throw new RunRequestError(
        `Cannot start ${request.experiment}: run ${this.#latest?.id} is still running`,
        409,
      );
    }
    const record: RunRecord = {
      id: `r${this.#next++}`,
      ...request,
      status: "running",
      started: new Date().toISOString(),
    };
    this.#records.set(record.id, record);
    for (const id of [...this.#records.keys()].slice(0, -50)) this.#records.delete(id);
    this.#latest = record;
    this.#latestEvents = [];
    this.#current = this.#run(record).finally(() => (this.#current = undefined));
    return { ...record };
  }

  /** Resolves once the run going now (if any) has ended. */
  async idle(): Promise<void> {
    await this.#current;
  }

  async #run(record: RunRecord): Promise<void> {
    const events = this.#latestEvents;
    const sub = trace$().subscribe((e) => {
      if (events.length < this.#maxRunEvents) events.push(e);
    });
    const t0 = performance.now();
    this.#onChange?.({ ...record });
    try {
      const { experiment, size, iters } = record;
      const [d1] = this.devices;
      const options = { size, iters, print: null };
      const [a, b, both] = labelsOf(experiment);
      let t: { parts: [number, number]; both: number };
      if (experiment === "train") {
        await this.#train(record, events);
        record.status = "done";
        return;
      }
      if (experiment === "gpu1-gpu2") {
        const r = await gpu1Gpu2(this.devices, options);
        t = { parts: [r.gpu1, r.gpu2], both: r.both };
      } else {
        const r = await (experiment === "run-and-copy" ? runAndCopy : copyHeavy)(d1, options);
        t = { parts: [r.run, r.copy], both: r.both };
      }
      record.timings = { [a]: t.parts[0], [b]: t.parts[1], [both]: t.both };
      record.summary = summarize(events, { span: both });
      record.status = "done";
    } catch (e) {
      record.status = "failed";
      record.error = e instanceof Error ? e.message : String(e);
    } finally {
      sub.unsubscribe();
      record.seconds = (performance.now() - t0) / 1000;
      this.#onChange?.({ ...record });
    }
  }

  /** Trains a fresh MLP on all the devices, adding one line per epoch to `record`. */
  async #train(record: RunRecord, events: readonly TraceEvent[]): Promise<void> {
    const { train, test } = this.#mnist ??= loadMnist();
    const trainer = new Trainer(mlp({ seed: 1 }), this.devices, { lr: TRAIN_LR });
    using _ = { [Symbol.dispose]: () => trainer.dispose() };
    record.epochs = [];
    for (let epoch = 1; epoch <= record.iters; epoch++) {
      const from = events.length;
      const r = await trainEpoch(trainer, train, {
        batch: record.size,
        seed: epoch,
        limit: this.#trainSamples,
      });
      const { accuracy } = await trainer.evaluate(test);
      const traffic = gradientTraffic(events.slice(from));
      record.epochs.push({
        epoch,
        loss: r.loss,
        trainAccuracy: r.trainAccuracy,
        testAccuracy: accuracy,
        seconds: r.seconds,
        samplesPerSecond: r.samplesPerSecond,
        gradientHidden: traffic.total > 0 ? traffic.hiddenAnyDevice / traffic.total : null,
      });
      if (epoch < record.iters) this.#onChange?.({ ...record, epochs: [...record.epochs] });
    }
    record.summary = summarize(events);
  }
}
