// Small ops on both WebGPU backends: a chain of 1,000 adds of 1,024 floats (`y = y.add(x)`
// from x, then one readback), in microseconds per op, through autopar, through raw WebGPU in
// a Worker (bench/small_ops_raw_worker.ts: autopar's WGSL, 64 dispatches per command buffer,
// with one compute pass per dispatch, or one pass for all 64 as autopar has encoded a batch
// since its lean op path), and through tfjs-backend-webgpu 4.22 on the main thread. Each
// backend runs in a child process of this script (one backend per process), where the four
// take turns round after round, so a noisy machine slows them alike (a turn is 5 chains back
// to back, its figure their median); the figures are medians over the rounds. Goals: autopar
// at most 1.5x raw per op (either variant) and at most 0.4x tfjs. Prints a table and writes
// bench/results/small_ops.json.
//
//   deno run -A bench/small_ops.ts [--rounds N]
//   deno run -A bench/small_ops.ts --backend deno|dawn [--rounds N]   (one child: a JSON line)
import { Worker } from "node:worker_threads";
import type * as TF from "npm:@tensorflow/tfjs-core@4.22.0";
import { backendArgs, runBackendChild } from "./backend_child.ts";
import { startTfjs as startTfjsOn, type TfjsGpu } from "./tfjs_webgpu.ts";
import { capture, rand, type Tensor, tryAllGpus } from "../mod.ts";
import type { WebGpuBackend } from "../lib/devices/backend.ts";
import { median } from "../lib/experiments/section.ts";
import type { FromRawWorker, ToRawWorker } from "./small_ops_raw_worker.ts";

const BACKENDS: readonly WebGpuBackend[] = ["deno", "dawn"];
const OPS = 1000;
const N = 1024;
const PER_COMMAND_BUFFER = 64;
/** Chains back to back in one contender's turn; the turn's figure is their median. */
const CHAINS_PER_TURN = 5;
/** autopar over raw holds for both raw variants; one pass is how autopar now encodes. */
const GOALS = {
  autoparOverRaw: 1.5,
  autoparOverRawOnePass: 1.5,
  autoparOverTfjs: 0.4,
  capturedOverRawOnePass: 1.5,
  capturedOverTfjs: 0.4,
};
const CONTENDERS = ["autopar", "autoparCaptured", "raw", "rawOnePass", "tfjs"] as const;
type Contender = typeof CONTENDERS[number];
const LABELS: Record<Contender, string> = {
  autopar: "autopar",
  autoparCaptured: "autopar, the chain captured, replayed",
  raw: "raw WebGPU, one pass per dispatch",
  rawOnePass: "raw, one pass per command buffer",
  tfjs: "tfjs-backend-webgpu 4.22",
};

/** One contender's figures in one backend. */
interface ContenderResult {
  /** Median over the rounds. */
  usPerOp: number;
  /** Each round's (the median of its turn's chains), in order. */
  rounds: number[];
  /** Largest |y - reference| over the timed chains (reference: the same adds in float32 on the CPU). */
  maxError: number;
}

/** What a child prints as its last line. */
interface ChildReport {
  backend: WebGpuBackend;
  error?: string;
  adapters?: Partial<Record<Contender, string>>;
  /** The GPU object tfjs ran on, and whether its device is really that backend's. */
  tfjsGpu?: TfjsGpu;
  /** Set when tfjs could not run on this backend (its figures are then missing). */
  tfjsError?: string;
  /** The contenders' order in each round. */
  order?: Contender[][];
  contenders?: Partial<Record<Contender, ContenderResult>>;
  ratios?: {
    autoparOverRaw?: number;
    autoparOverRawOnePass?: number;
    autoparOverTfjs?: number;
    capturedOverRawOnePass?: number;
    capturedOverTfjs?: number;
  };
  goalsMet?: Partial<Record<keyof typeof GOALS, boolean>>;
  seconds?: number;
}

const { backend: childBackend, rounds } = backendArgs(Deno.args);

/** The chain in float32 on the CPU: x, then `OPS` times y + x. */
function reference(x: Float32Array): Float32Array {
  const y = Float32Array.from(x);
  for (let k = 0; k < OPS; k++) for (let i = 0; i < y.length; i++) y[i] = y[i] + x[i];
  return y;
}

function maxError(y: Float32Array, ref: Float32Array): number {
  if (y.length !== ref.length) return Infinity;
  let e = 0;
  for (let i = 0; i < y.length; i++) e = Math.max(e, Math.abs(y[i] - ref[i]));
  return Number.isNaN(e) ? Infinity : e;
}

/** A contender: runs the chain once, answers its ms and its result. */
type Chain = () => Promise<{ ms: number; y: Float32Array }>;

async function timed(work: () => Promise<Float32Array>): Promise<{ ms: number; y: Float32Array }> {
  const t = performance.now();
  const y = await work();
  return { ms: performance.now() - t, y };
}

/** The raw Worker, started on `backend` with `x` uploaded. */
async function startRaw(backend: WebGpuBackend, x: Float32Array) {
  const worker = new Worker(new URL("./small_ops_raw_worker.ts", import.meta.url));
  const reply = (msg: ToRawWorker) =>
    new Promise<FromRawWorker>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.postMessage(msg);
    }).finally(() => worker.removeAllListeners("error"));
  const ready = await reply({ type: "init", backend, x });
  if (ready.type !== "ready") {
    throw new Error(`Cannot start the raw Worker on ${backend}: ${JSON.stringify(ready)}`);
  }
  const chain = (onePass: boolean): Chain => () =>
    timed(async () => {
      const r = await reply({ type: "chain", ops: OPS, perBuffer: PER_COMMAND_BUFFER, onePass });
      if (r.type !== "result") throw new Error(`raw chain failed: ${JSON.stringify(r)}`);
      return r.y;
    });
  return {
    adapter: ready.adapter,
    chain,
    close: async () => {
      await reply({ type: "close" });
      await worker.terminate();
    },
  };
}

/** tfjs-backend-webgpu on the main thread, on `backend`'s GPU (see tfjs_webgpu.ts). */
async function startTfjs(backend: WebGpuBackend, x: Float32Array) {
  const { tf, adapter, gpu } = await startTfjsOn(backend);
  const xt = tf.tensor1d(x);
  const chain: Chain = () =>
    timed(async () => {
      let y: TF.Tensor = xt;
      for (let i = 0; i < OPS; i++) {
        const next = tf.add(y, xt);
        if (y !== xt) y.dispose();
        y = next;
      }
      const data = await y.data() as Float32Array;
      y.dispose();
      return data;
    });
  return {
    adapter,
    gpu,
    chain,
    tensors: () => tf.memory().numTensors,
  };
}

/** One backend, in this process: the four contenders taking turns. */
async function child(backend: WebGpuBackend): Promise<ChildReport> {
  const report: ChildReport = { backend };
  const started = performance.now();
  const devices = await tryAllGpus({ count: 1, backend });
  if (devices.length < 1 || devices[0].info.backend !== backend) {
    report.error = `autopar found no ${backend} device (${devices.map((d) => d.info.backend)})`;
    return report;
  }
  const [d] = devices;
  const x = rand([N], { device: d, seed: 1 });
  const xs = await x.data();
  const ref = reference(xs);
  const autopar: Chain = () =>
    timed(async () => {
      let y: Tensor = x;
      for (let i = 0; i < OPS; i++) {
        const next = y.add(x);
        if (y !== x) y.dispose();
        y = next;
      }
      const data = await y.data();
      y.dispose();
      return data;
    });
  // The same chain as a captured step: a replay is one op, its 1,000 kernels one segment
  // the device Worker encodes in one go.
  const step = capture((x: Tensor) => {
    let y: Tensor = x;
    for (let i = 0; i < OPS; i++) {
      const next = y.add(x);
      if (y !== x) y.dispose();
      y = next;
    }
    return y;
  });
  const autoparCaptured: Chain = () =>
    timed(async () => {
      const y = step.replay(x);
      const data = await y.data();
      y.dispose();
      return data;
    });
  const raw = await startRaw(backend, xs);
  const chains: Partial<Record<Contender, Chain>> = {
    autopar,
    autoparCaptured,
    raw: raw.chain(false),
    rawOnePass: raw.chain(true),
  };
  report.adapters = { autopar: d.info.adapter, raw: raw.adapter };
  let tfjs: Awaited<ReturnType<typeof startTfjs>> | undefined;
  try {
    tfjs = await startTfjs(backend, xs);
    chains.tfjs = tfjs.chain;
    report.adapters.tfjs = tfjs.adapter;
    report.tfjsGpu = tfjs.gpu;
  } catch (e) {
    report.tfjsError = e instanceof Error ? e.message : String(e);
  }
  const names = CONTENDERS.filter((c) => chains[c] !== undefined);
  // Warm-up: compiles the kernels and fills tfjs's buffer pool.
  for (const c of names) await chains[c]!();
  await autoparCaptured(); // the capture's second call records, the third replays
  const tensorsBefore = tfjs?.tensors();
  const seen = new Map<Contender, { ms: number[]; error: number }>();
  report.order = [];
  for (let r = 0; r < rounds; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]);
    report.order.push(order);
    for (const c of order) {
      const turn: number[] = [];
      const s = seen.get(c) ?? { ms: [], error: 0 };
      for (let k = 0; k < CHAINS_PER_TURN; k++) {
        const { ms, y } = await chains[c]!();
        turn.push(ms * 1000 / OPS);
        s.error = Math.max(s.error, maxError(y, ref));
      }
      s.ms.push(median(turn));
      seen.set(c, s);
    }
  }
  if (tfjs && tfjs.tensors() !== tensorsBefore) {
    report.tfjsError = `tfjs leaked ${tfjs.tensors() - tensorsBefore!} tensors over the rounds`;
  }
  report.contenders = {};
  for (const [c, s] of seen) {
    report.contenders[c] = { usPerOp: median(s.ms), rounds: s.ms, maxError: s.error };
  }
  const us = (c: Contender) => report.contenders![c]?.usPerOp;
  const ratio = (a?: number, b?: number) => a !== undefined && b !== undefined ? a / b : undefined;
  report.ratios = {
    autoparOverRaw: ratio(us("autopar"), us("raw")),
    autoparOverRawOnePass: ratio(us("autopar"), us("rawOnePass")),
    autoparOverTfjs: ratio(us("autopar"), us("tfjs")),
    capturedOverRawOnePass: ratio(us("autoparCaptured"), us("rawOnePass")),
    capturedOverTfjs: ratio(us("autoparCaptured"), us("tfjs")),
  };
  const met = (v: number | undefined, goal: number) => v === undefined ? undefined : v <= goal;
  report.goalsMet = {
    autoparOverRaw: met(report.ratios.autoparOverRaw, GOALS.autoparOverRaw),
    autoparOverRawOnePass: met(report.ratios.autoparOverRawOnePass, GOALS.autoparOverRawOnePass),
    autoparOverTfjs: met(report.ratios.autoparOverTfjs, GOALS.autoparOverTfjs),
    capturedOverRawOnePass: met(
      report.ratios.capturedOverRawOnePass,
      GOALS.capturedOverRawOnePass,
    ),
    capturedOverTfjs: met(report.ratios.capturedOverTfjs, GOALS.capturedOverTfjs),
  };
  report.seconds = (performance.now() - started) / 1000;
  step.dispose();
  x.dispose();
  await raw.close();
  return report;
}

if (childBackend !== undefined) await runBackendChild(childBackend, child);

/** Lines every healthy child prints on stderr: Dawn's limit warnings, Deno's npm notices. */
const NOISE = [
  /artificially reduced from \d+ to \d+/,
  /[╭╰│]|Ignored build scripts|npm:webgpu@|Lifecycle scripts|nodeModulesDir|deno config file/,
];

async function runChild(backend: WebGpuBackend) {
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--backend", backend, "--rounds", String(rounds)],
    env: { AUTOPAR_WEBGPU: backend, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(150_000),
  }).output();
  const text = new TextDecoder();
  const last = text.decode(out.stdout).trim().split("\n").at(-1) ?? "";
  let report: ChildReport;
  try {
    report = JSON.parse(last) as ChildReport;
  } catch {
    report = { backend, error: `the child printed no report (exit ${out.code}, ${out.signal})` };
  }
  const stderr = text.decode(out.stderr).split("\n")
    .filter((l) => l.trim() !== "" && !NOISE.some((re) => re.test(l)));
  return {
    ...report,
    exitCode: out.code,
    signal: out.signal,
    processSeconds: (performance.now() - t) / 1000,
    stderrTail: stderr.length > 0 ? stderr.slice(-8) : undefined,
  };
}

const git = (...args: string[]) =>
  new TextDecoder().decode(
    new Deno.Command("git", { args, cwd: new URL("..", import.meta.url), stdout: "piped" })
      .outputSync().stdout,
  ).trimEnd(); // not trimStart: a porcelain line starts with its status, a space for unstaged

// Other work on this machine skews every contender: the load when this run began says how much.
const loadAverage = Deno.loadavg();
const results: Record<string, Awaited<ReturnType<typeof runChild>>> = {};
for (const b of BACKENDS) {
  console.error(`small ops: ${b} ...`);
  results[b] = await runChild(b);
  if (results[b].error) console.error(`  ${b}: ${results[b].error}`);
  for (const l of results[b].stderrTail ?? []) console.error(`  ${b} stderr: ${l}`);
}

const fmt = (x?: number) =>
  x === undefined ? "-" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
const col = (s: string) => s.padStart(16);
const adapter = results.deno.adapters?.autopar ?? results.dawn.adapters?.autopar ?? "unknown";
console.log(
  `\nsmall ops: ${OPS} adds of ${N} floats in one chain, us/op, median of ${rounds} rounds ` +
    `(${adapter}, ${navigator.hardwareConcurrency} cores)`,
);
console.log("".padEnd(40) + BACKENDS.map(col).join(""));
for (const c of CONTENDERS) {
  console.log(
    LABELS[c].padEnd(40) +
      BACKENDS.map((b) => col(fmt(results[b].contenders?.[c]?.usPerOp))).join(""),
  );
}
const verdict = (v: number | undefined, goal: number) =>
  v === undefined ? "-" : `${fmt(v)} ${v <= goal ? "met" : "missed"}`;
const ratioRows: [string, keyof typeof GOALS][] = [
  [`autopar / raw (goal <= ${GOALS.autoparOverRaw})`, "autoparOverRaw"],
  [`autopar / raw one pass (goal <= ${GOALS.autoparOverRawOnePass})`, "autoparOverRawOnePass"],
  [`autopar / tfjs (goal <= ${GOALS.autoparOverTfjs})`, "autoparOverTfjs"],
  [`captured / raw one pass`, "capturedOverRawOnePass"],
  [`captured / tfjs`, "capturedOverTfjs"],
];
for (const [label, key] of ratioRows) {
  console.log(
    label.padEnd(40) +
      BACKENDS.map((b) => col(verdict(results[b].ratios?.[key], GOALS[key]))).join(""),
  );
}
for (const b of BACKENDS) {
  const r = results[b];
  if (r.tfjsGpu) console.log(`${b}: tfjs ran on ${r.tfjsGpu.source} (${r.tfjsGpu.deviceClass})`);
  if (r.tfjsError) console.log(`${b}: tfjs: ${r.tfjsError}`);
  const wrong = CONTENDERS.filter((c) => (r.contenders?.[c]?.maxError ?? 0) > 1e-4 * (OPS + 1));
  if (wrong.length > 0) console.log(`${b}: wrong results from ${wrong.join(", ")}`);
}

const path = new URL("./results/small_ops.json", import.meta.url);
const result = {
  benchmark: "small_ops",
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  commit: git("rev-parse", "HEAD"),
  /** lib/ files with uncommitted changes when this ran (autopar measured as they were). */
  libUncommitted: git("status", "--porcelain", "lib").split("\n").filter((l) => l !== ""),
  cores: navigator.hardwareConcurrency,
  loadAverageAtStart: loadAverage,
  adapter,
  rounds,
  workload: `chain of ${OPS} adds of ${N} floats (y = y + x from x), one readback at the end`,
  chainsPerTurn: CHAINS_PER_TURN,
  perCommandBuffer: PER_COMMAND_BUFFER,
  goals: GOALS,
  raw: "Worker on the same backend, binary add WGSL of lib/kernels, two buffers taking turns, " +
    "a new bind group per op, one uniform buffer written once, a command buffer submitted " +
    `every ${PER_COMMAND_BUFFER} ops`,
  backends: results,
};
Deno.mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
Deno.writeTextFileSync(path, JSON.stringify(result, null, 2) + "\n");
console.log(`\nwrote ${path.pathname}`);
