// Kernel fusion in captured steps (issue 20), on both WebGPU backends, each in a child
// process of this script (one backend per process), side by side in one run:
// - the chain of 1,000 adds of 1,024 floats (`y = y.add(x)`), captured and replayed fused
//   and unfused, and through tfjs-backend-webgpu 4.22 on the same runtime: us per op, with
//   one readback a chain and with 10 chains a readback (the steady state of a loop);
// - a gelu-like chain on 1M floats (x * 0.5 * (1 + tanh(0.79788 * (x + 0.044715 x^3))),
//   nine elementwise ops, then a sum), fused and unfused, and tfjs: ms per chain;
// - the chapter's MLP (784 -> 256 -> 10) training step at batch 256 with SGD and with Adam:
//   kernels per step and samples/s, run anew, captured unfused and captured fused.
// Contenders take turns round after round (a noisy machine slows them alike); figures are
// medians over the rounds. Writes bench/results/fusion.json.
//
//   deno run -A bench/fusion.ts [--rounds N]
//   deno run -A bench/fusion.ts --backend deno|dawn [--rounds N]   (one child: a JSON line)
import type * as TF from "npm:@tensorflow/tfjs-core@4.22.0";
import {
  Adam,
  capture,
  type Captured,
  type Device,
  fromArray,
  rand,
  synchronize,
  type Tensor,
  tryAllGpus,
} from "../mod.ts";
import type { WebGpuBackend } from "../lib/devices/backend.ts";
import { median } from "../lib/experiments/section.ts";
import { mlp, Trainer } from "../lib/train/trainer.ts";
import { loadMnist } from "../lib/train/mnist.ts";
import { trainEpoch } from "../lib/train/epoch.ts";
import { backendArgs, runBackendChild } from "./backend_child.ts";
import { startTfjs, type TfjsGpu } from "./tfjs_webgpu.ts";

const BACKENDS: readonly WebGpuBackend[] = ["deno", "dawn"];
const CHAIN_OPS = 1000;
const CHAIN_N = 1024;
const GELU_N = 1 << 20;
const GELU_OPS = 9;
const BATCH = 256;
const MLP_BATCHES = 24;
/** Chains a readback in the steady-state run of the chain (a training loop reads rarely). */
const STEADY_CHAINS = 10;
/** Goals of issue 20. */
const GOALS = { chainFusedOverTfjs: 0.05, adamKernelsFusedOverUnfused: 0.5, adamSpeedup: 1.3 };

const { backend: childBackend, rounds } = backendArgs(Deno.args);

/** Contenders taking turns for `rounds` rounds; each turn's figure is the median of `per` runs. */
async function turns(
  contenders: Record<string, () => Promise<number>>,
  per: number,
): Promise<Record<string, { median: number; rounds: number[] }>> {
  const names = Object.keys(contenders);
  const seen: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) await contenders[n](); // warm-up: compiles, records
  for (const n of names) await contenders[n]();
  for (let r = 0; r < rounds; r++) {
    for (const n of names.map((_, i) => names[(i + r) % names.length])) {
      const turn: number[] = [];
      for (let k = 0; k < per; k++) turn.push(await contenders[n]());
      seen[n].push(median(turn));
    }
  }
  return Object.fromEntries(names.map((n) => [n, { median: median(seen[n]), rounds: seen[n] }]));
}

const time = async (work: () => Promise<unknown>) => {
  const t = performance.now();
  await work();
  return performance.now() - t;
};

/** A contender that replays `step` for `x` `times` times and reads the last result: its ms. */
const replayed = (step: Captured<Tensor>, x: Tensor, times = 1) => () =>
  time(async () => {
    let y = step.replay(x);
    for (let i = 1; i < times; i++) {
      y.dispose();
      y = step.replay(x);
    }
    await y.data();
    y.dispose();
  });

/** `body` captured fused and unfused, and a contender replaying each `times` times for `x`. */
function twoWays(body: (x: Tensor) => Tensor, x: Tensor, times = 1) {
  const fused = capture(body);
  const unfused = capture(body, { fuse: false });
  const contenders: Record<string, () => Promise<number>> = {
    fused: replayed(fused, x, times),
    unfused: replayed(unfused, x, times),
  };
  return { fused, unfused, contenders };
}

/**
 * The 1,000-add chain, `chains` chains a readback: us per op, captured fused and unfused,
 * and tfjs (its chains queued the same way, reading the last). With one chain a readback,
 * also tfjs's one add and its readback (`tfjsOneAdd`, ms), so that tfjs's time per op
 * without its readback is measured too: (chain - one add) / 999.
 */
async function chain(d: Device, tf: typeof TF | undefined, chains: number) {
  const x = rand([CHAIN_N], { device: d, seed: 1 });
  const xs = await x.data();
  const body = (x: Tensor) => {
    let y: Tensor = x;
    for (let i = 0; i < CHAIN_OPS; i++) {
      const next = y.add(x);
      if (y !== x) y.dispose();
      y = next;
    }
    return y;
  };
  const { fused, unfused, contenders } = twoWays(body, x, chains);
  if (tf) {
    const xt = tf.tensor1d(xs);
    const tfChain = (ops: number) => {
      let y: TF.Tensor = xt;
      for (let i = 0; i < ops; i++) {
        const next = tf.add(y, xt);
        if (y !== xt) y.dispose();
        y = next;
      }
      return y;
    };
    const tfRun = (ops: number, times: number) => () =>
      time(async () => {
        let y = tfChain(ops);
        for (let i = 1; i < times; i++) {
          y.dispose();
          y = tfChain(ops);
        }
        await y.data();
        y.dispose();
      });
    contenders.tfjs = tfRun(CHAIN_OPS, chains);
    if (chains === 1) contenders.tfjsOneAdd = tfRun(1, 1);
  }
  const ms = await turns(contenders, 5);
  const perOp = (median: number) => (median * 1000) / (CHAIN_OPS * chains);
  const usPerOp: Record<string, number> = {};
  for (const [k, v] of Object.entries(ms)) if (k !== "tfjsOneAdd") usPerOp[k] = perOp(v.median);
  if (ms.tfjsOneAdd) {
    usPerOp.tfjsWithoutReadback = ((ms.tfjs.median - ms.tfjsOneAdd.median) * 1000) /
      (CHAIN_OPS - 1);
  }
  const kernels = { fused: fused.kernels, unfused: unfused.kernels };
  // Every chain gives the same bits fused and unfused.
  const [a, b] = [fused.replay(x), unfused.replay(x)];
  const same = (await a.data()).join() === (await b.data()).join();
  fused.dispose();
  unfused.dispose();
  x.dispose();
  return { chains, usPerOp, kernels, sameBits: same, rounds: ms };
}

/** The gelu-like chain on 1M floats: ms per chain (and its sum), fused and unfused, and tfjs. */
async function gelu(d: Device, tf?: typeof TF) {
  const x = rand([GELU_N], { device: d, seed: 2 });
  const body = (x: Tensor) => {
    const inner = x.mul(x).mul(x).mul(0.044715).add(x).mul(0.7978845608);
    return inner.tanh().add(1).mul(x).mul(0.5).sum();
  };
  const { fused, unfused, contenders } = twoWays(body, x);
  if (tf) {
    const xt = tf.tensor1d(await x.data());
    contenders.tfjs = () =>
      time(async () => {
        const y = tf.tidy(() => {
          const cube = tf.mul(tf.mul(xt, xt), xt);
          const inner = tf.mul(tf.add(tf.mul(cube, 0.044715), xt), 0.7978845608);
          return tf.sum(tf.mul(tf.mul(tf.add(tf.tanh(inner), 1), xt), 0.5));
        });
        await y.data();
        y.dispose();
      });
  }
  const ms = await turns(contenders, 3);
  const [a, b] = [fused.replay(x), unfused.replay(x)];
  const sameBits = (await a.data())[0] === (await b.data())[0];
  const kernels = { fused: fused.kernels, unfused: unfused.kernels };
  fused.dispose();
  unfused.dispose();
  return {
    msPerChain: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, v.median])),
    kernels,
    sameBits,
    rounds: ms,
  };
}

/** Kernels per step of the MLP step with `optimizer`, captured with or without fusion. */
async function mlpKernels(d: Device, optimizer: "sgd" | "adam", fuse: boolean) {
  const t = trainer(d, optimizer, false);
  const step = capture((x: Tensor, y: Tensor) => {
    const out = t.dp.forwardBackward(x, y, (o, l) => o.crossEntropy(l));
    t.opt.step();
    t.opt.zeroGrad();
    return out.losses;
  }, { fuse });
  const x = fromArray(new Float32Array(BATCH * 784).fill(0.5), [BATCH, 784], { device: d });
  const y = fromArray(Float32Array.from({ length: BATCH }, (_, i) => i % 10), [BATCH], {
    device: d,
  });
  for (let i = 0; i < 3; i++) step.replay(x, y);
  await synchronize();
  const kernels = step.kernels;
  step.dispose();
  t.dispose();
  return kernels;
}

const trainer = (d: Device, optimizer: "sgd" | "adam", capture: false | { fuse: boolean }) =>
  new Trainer(mlp({ seed: 1 }), [d], {
    lr: optimizer === "adam" ? 1e-3 : 0.1,
    capture,
    optimizer: optimizer === "adam" ? (p) => new Adam(p, { lr: 1e-3 }) : undefined,
  });

/** The MLP's training: samples/s run anew, captured unfused and captured fused, per optimizer. */
async function mlpSteps(d: Device) {
  const { train } = loadMnist();
  const out: Record<string, unknown> = {};
  for (const optimizer of ["sgd", "adam"] as const) {
    const ways = {
      anew: trainer(d, optimizer, false),
      unfused: trainer(d, optimizer, { fuse: false }),
      fused: trainer(d, optimizer, { fuse: true }),
    };
    let seed = 0;
    const contenders = Object.fromEntries(
      Object.entries(ways).map(([name, t]) => [name, async () => {
        const r = await trainEpoch(t, train, {
          batch: BATCH,
          limit: MLP_BATCHES * BATCH,
          seed: seed++,
        });
        return r.samplesPerSecond;
      }]),
    );
    const speed = await turns(contenders, 1);
    for (const t of Object.values(ways)) t.dispose();
    const kernels = {
      unfused: await mlpKernels(d, optimizer, false),
      fused: await mlpKernels(d, optimizer, true),
    };
    out[optimizer] = {
      samplesPerSecond: Object.fromEntries(Object.entries(speed).map(([k, v]) => [k, v.median])),
      kernelsPerStep: kernels,
      fusedOverUnfusedSpeed: speed.fused.median / speed.unfused.median,
      fusedOverUnfusedKernels: kernels.fused / kernels.unfused,
      rounds: speed,
    };
  }
  return out;
}

interface ChildReport {
  backend: WebGpuBackend;
  error?: string;
  adapter?: string;
  tfjsAdapter?: string;
  tfjsGpu?: TfjsGpu;
  tfjsError?: string;
  chain?: Awaited<ReturnType<typeof chain>>;
  /** The same chain, {@link STEADY_CHAINS} chains a readback. */
  chainSteady?: Awaited<ReturnType<typeof chain>>;
  gelu?: Awaited<ReturnType<typeof gelu>>;
  mlp?: Record<string, unknown>;
  seconds?: number;
}

async function child(backend: WebGpuBackend): Promise<ChildReport> {
  const started = performance.now();
  const report: ChildReport = { backend };
  const devices = await tryAllGpus({ count: 1, backend });
  if (devices.length < 1 || devices[0].info.backend !== backend) {
    report.error = `autopar found no ${backend} device (${devices.map((d) => d.info.backend)})`;
    return report;
  }
  const [d] = devices;
  report.adapter = d.info.adapter;
  let tf: typeof TF | undefined;
  try {
    const started = await startTfjs(backend);
    tf = started.tf;
    report.tfjsAdapter = started.adapter;
    report.tfjsGpu = started.gpu;
  } catch (e) {
    report.tfjsError = e instanceof Error ? e.message : String(e);
  }
  const stage = (name: string) => console.error(`fusion ${backend}: ${name}`);
  stage("chain");
  report.chain = await chain(d, tf, 1);
  stage("chain, steady");
  // tfjs on Deno's WebGPU grows ~8 KB an op, and Deno segfaults after some 70,000 of its ops
  // (bench/tfjs_deno_leak.ts, tfjs alone): it sits out the steady run there.
  report.chainSteady = await chain(d, backend === "deno" ? undefined : tf, STEADY_CHAINS);
  stage("gelu");
  report.gelu = await gelu(d, tf);
  stage("mlp");
  report.mlp = await mlpSteps(d);
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

if (childBackend !== undefined) await runBackendChild(childBackend, child);

async function runChild(backend: WebGpuBackend): Promise<ChildReport & { exitCode: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--backend", backend, "--rounds", String(rounds)],
    env: { AUTOPAR_WEBGPU: backend, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(600_000),
  }).output();
  const last = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  try {
    return { ...JSON.parse(last) as ChildReport, exitCode: out.code };
  } catch {
    const stderr = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-5).join(" | ");
    return {
      backend,
      error: `the child printed no report (exit ${out.code}): ${stderr}`,
      exitCode: out.code,
    };
  }
}

const git = (...args: string[]) =>
  new TextDecoder().decode(
    new Deno.Command("git", { args, cwd: new URL("..", import.meta.url), stdout: "piped" })
      .outputSync().stdout,
  ).trim();

const loadAverage = Deno.loadavg();
const results: Record<string, Awaited<ReturnType<typeof runChild>>> = {};
for (const b of BACKENDS) {
  console.error(`fusion: ${b} ...`);
  results[b] = await runChild(b);
  if (results[b].error) console.error(`  ${b}: ${results[b].error}`);
}

/**
 * The steady chain's fused us/op over tfjs's own steady figure, or where tfjs sat it out
 * (Deno), over tfjs's time per op without its readback.
 */
const steadyRatio = (r: ChildReport) => {
  const tfjs = r.chainSteady?.usPerOp.tfjs ?? r.chain?.usPerOp.tfjsWithoutReadback;
  return r.chainSteady && tfjs ? r.chainSteady.usPerOp.fused / tfjs : undefined;
};
const f = (x?: number, digits = 2) => x === undefined ? "-" : x.toFixed(digits);
const col = (s: string) => s.padStart(14);
console.log(
  `\nfusion, median of ${rounds} rounds (${results.deno.adapter ?? results.dawn.adapter})`,
);
console.log("".padEnd(46) + BACKENDS.map(col).join(""));
const row = (label: string, get: (r: ChildReport) => string) =>
  console.log(label.padEnd(46) + BACKENDS.map((b) => col(get(results[b]))).join(""));
for (const c of ["fused", "unfused", "tfjs"]) {
  row(`chain of 1,000 adds, us/op, ${c}`, (r) => f(r.chain?.usPerOp[c]));
}
row(
  "  fused / tfjs (goal <= 0.05)",
  (r) => f(r.chain && r.chain.usPerOp.fused / r.chain.usPerOp.tfjs, 3),
);
row("  kernels fused / unfused", (r) => `${r.chain?.kernels.fused} / ${r.chain?.kernels.unfused}`);
row("  tfjs without its readback, us/op", (r) => f(r.chain?.usPerOp.tfjsWithoutReadback));
for (const c of ["fused", "unfused", "tfjs"]) {
  row(`  ${STEADY_CHAINS} chains a readback, us/op, ${c}`, (r) => f(r.chainSteady?.usPerOp[c]));
}
row("  fused / tfjs (goal <= 0.05)", (r) => f(steadyRatio(r), 3));
for (const c of ["fused", "unfused", "tfjs"]) {
  row(`gelu-like on 1M floats, ms/chain, ${c}`, (r) => f(r.gelu?.msPerChain[c], 1));
}
type MlpRow = {
  samplesPerSecond: Record<string, number>;
  kernelsPerStep: { fused: number; unfused: number };
  fusedOverUnfusedSpeed: number;
};
for (const opt of ["sgd", "adam"]) {
  const m = (r: ChildReport) => r.mlp?.[opt] as MlpRow | undefined;
  for (const w of ["anew", "unfused", "fused"]) {
    row(`MLP ${opt}, samples/s, ${w}`, (r) => f(m(r)?.samplesPerSecond[w], 0));
  }
  row(
    `MLP ${opt}, kernels/step fused / unfused`,
    (r) => `${m(r)?.kernelsPerStep.fused} / ${m(r)?.kernelsPerStep.unfused}`,
  );
  row(`MLP ${opt}, fused / unfused samples/s`, (r) => f(m(r)?.fusedOverUnfusedSpeed));
}

const result = {
  benchmark: "fusion",
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  commit: git("rev-parse", "HEAD"),
  libUncommitted: git("status", "--porcelain", "lib").split("\n").filter((l) => l !== ""),
  cores: navigator.hardwareConcurrency,
  loadAverageAtStart: loadAverage,
  rounds,
  goals: GOALS,
  workloads: {
    chain: `${CHAIN_OPS} adds of ${CHAIN_N} floats (y = y + x), captured, one readback`,
    chainSteady: `the same chain replayed ${STEADY_CHAINS} times, one readback of the last`,
    gelu: `${GELU_OPS} elementwise ops on ${GELU_N} floats, then a sum, captured`,
    mlp: `784 -> 256 -> 10 MLP training step, batch ${BATCH}, ${MLP_BATCHES} batches a turn`,
  },
  backends: results,
};
const path = new URL("./results/fusion.json", import.meta.url);
Deno.mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
Deno.writeTextFileSync(path, JSON.stringify(result, null, 2) + "\n");
console.log(`\nwrote ${path.pathname}`);
