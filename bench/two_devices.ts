// Benchmark of the chapter's "GPU1 & GPU2" experiment: T1, T2, T(both) and T(both)/(T1+T2)
// through autopar, and the same products hand-written on raw WebGPU Workers in the same
// run, so the engine's overhead is a ratio. Writes bench/results/two_devices.json.
//
//   deno task bench [--size N] [--iters N] [--reps N]
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { gpu1Gpu2 } from "../lib/experiments/gpu1_gpu2.ts";
import { tryAllGpus } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { size: { type: "string" }, iters: { type: "string" }, reps: { type: "string" } },
});
const devices = await tryAllGpus({ count: 2 });
if (devices.length < 2) {
  console.log(`bench/two_devices.ts needs a WebGPU adapter; found ${devices.length} devices.`);
  Deno.exit(0);
}
const software = devices[0].info.software;
const size = Number(values.size ?? (software ? 384 : 4000));
const iters = Number(values.iters ?? 50);
const reps = Number(values.reps ?? 9);

const raw = await Promise.all([0, 1].map(() =>
  new Promise<Worker>((resolve) => {
    const w = new Worker(new URL("./raw_worker.ts", import.meta.url));
    w.once("message", () => resolve(w));
  })
));
const rawRun = (w: Worker) =>
  new Promise<void>((resolve) => {
    w.once("message", () => resolve());
    w.postMessage({ size, iters });
  });
const seconds = async (work: () => Promise<unknown>) => {
  const t = performance.now();
  await work();
  return (performance.now() - t) / 1000;
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

type Row = { t1: number; t2: number; both: number; ratio: number };
const autopar: Row[] = [];
const rawRows: Row[] = [];
await Promise.all(raw.map(rawRun)); // warm-up
for (let r = 0; r < reps; r++) {
  // Side by side in each repetition, alternating which goes first.
  const runAutopar = async () => {
    const t = await gpu1Gpu2(devices, { size, iters, print: null });
    autopar.push({ t1: t.gpu1, t2: t.gpu2, both: t.both, ratio: t.both / (t.gpu1 + t.gpu2) });
  };
  const runRaw = async () => {
    const t1 = await seconds(() => rawRun(raw[0]));
    const t2 = await seconds(() => rawRun(raw[1]));
    const both = await seconds(() => Promise.all(raw.map(rawRun)));
    rawRows.push({ t1, t2, both, ratio: both / (t1 + t2) });
  };
  if (r % 2 === 0) {
    await runAutopar();
    await runRaw();
  } else {
    await runRaw();
    await runAutopar();
  }
}
for (const w of raw) w.terminate();

const summary = (rows: Row[]) => ({
  t1: median(rows.map((x) => x.t1)),
  t2: median(rows.map((x) => x.t2)),
  both: median(rows.map((x) => x.both)),
  ratio: median(rows.map((x) => x.ratio)),
});
const a = summary(autopar);
const b = summary(rawRows);
const result = {
  benchmark: "two_devices",
  date: new Date().toISOString(),
  hardware: {
    adapter: devices[0].info.adapter,
    software,
    cores: navigator.hardwareConcurrency,
    threadsPerDevice: devices[0].info.threads ?? null,
  },
  workload: { size, iters, reps, devices: devices.length },
  autopar: { median: a, runs: autopar },
  raw: { median: b, runs: rawRows },
  // Paired: each repetition's autopar time over the raw time measured right beside it, so a
  // slow patch of the machine weighs on both sides; the median of those ratios.
  autoparOverRaw: {
    both: median(autopar.map((x, i) => x.both / rawRows[i].both)),
    t1: median(autopar.map((x, i) => x.t1 / rawRows[i].t1)),
    t2: median(autopar.map((x, i) => x.t2 / rawRows[i].t2)),
  },
  goals: { "both/(t1+t2)": 0.55, "autopar/raw": 1.05 },
};
const f = (x: number) => x.toFixed(4);
console.log(`two devices, ${iters} products of ${size}x${size} each, median of ${reps} runs`);
console.log(`adapter: ${result.hardware.adapter} (${software ? "software" : "hardware"})`);
console.log("            T1 (s)   T2 (s)   T(both)  T(both)/(T1+T2)");
console.log(`autopar     ${f(a.t1)}   ${f(a.t2)}   ${f(a.both)}   ${f(a.ratio)}`);
console.log(`raw WebGPU  ${f(b.t1)}   ${f(b.t2)}   ${f(b.both)}   ${f(b.ratio)}`);
console.log(
  `autopar / raw, median of paired ratios: T(both) ${f(result.autoparOverRaw.both)}, ` +
    `T1 ${f(result.autoparOverRaw.t1)}, T2 ${f(result.autoparOverRaw.t2)}`,
);
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/two_devices.json", import.meta.url),
  JSON.stringify(result, null, 2) + "\n",
);
