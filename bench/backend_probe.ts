// One figure of bench/backends.ts on one WebGPU backend, in a process of its own (only one
// backend can run per process). Prints progress on stderr and, as its last line on stdout,
// one JSON object: a ProbeReport.
//
//   deno run -A bench/backend_probe.ts --backend deno|dawn --figure NAME
import { parseArgs } from "node:util";
import {
  closeDevices,
  cpu,
  type Device,
  rand,
  synchronize,
  type Tensor,
  tryAllGpus,
} from "../mod.ts";
import { gpu1Gpu2, type Gpu1Gpu2Timings } from "../lib/experiments/gpu1_gpu2.ts";
import { copyHeavy, type OverlapTimings, runAndCopy } from "../lib/experiments/copy_overlap.ts";
import { median } from "../lib/experiments/section.ts";
import { mlp as mlpModel, Trainer } from "../lib/train/trainer.ts";
import { trainEpoch } from "../lib/train/epoch.ts";
import { loadMnist } from "../lib/train/mnist.ts";

/** The figures, in the order bench/backends.ts runs them. */
export const FIGURES = [
  "readback",
  "copy",
  "two_devices",
  "chapter",
  "matmul",
  "cpu",
  "small_ops",
  "mlp",
] as const;

/** A figure's name. */
export type Figure = typeof FIGURES[number];

/** One number a figure measured. */
export interface Metric {
  /** What it is, with its workload: "readback of 1024 floats". */
  name: string;
  value: number;
  /** "ms", "s", "us/op", "GFLOP/s", "samples/s", "cores" or "" for a ratio. */
  unit: string;
  /** Which way is better, for the table's verdict; none for a figure that only explains. */
  better?: "lower" | "higher";
}

/** What a probe prints as its last line. */
export interface ProbeReport {
  figure: string;
  backend: string;
  /** Set when the backend could not start or the figure threw. */
  error?: string;
  /** True when the backend could not start at all (no point trying it again). */
  startFailed?: boolean;
  adapter?: string;
  software?: boolean;
  threadsPerDevice?: number | null;
  devices?: number;
  metrics: Metric[];
  /** Seconds the figure took, without starting the devices. */
  seconds?: number;
}

/** Milliseconds of `work`. */
async function ms(work: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await work();
  return performance.now() - t;
}

/**
 * CPU seconds this process has used (every thread: utime + stime of /proc/self/stat, in
 * clock ticks of 100 Hz); NaN where there is no /proc.
 */
function cpuSeconds(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    // Fields after the command name in parentheses, which may hold spaces: state is field 3,
    // utime field 14 and stime field 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Median ms of blocking readbacks of a small result already requested: `await y.data()`. */
async function readback(d: Device): Promise<Metric[]> {
  const x = rand([1024], { device: d, seed: 1 });
  const times: number[] = [];
  for (let i = 0; i < 60; i++) {
    const y = x.add(x);
    const t = await ms(() => y.data());
    y.dispose();
    if (i >= 10) times.push(t); // the first ten are the warm-up
  }
  x.dispose();
  return [{
    name: "await y.data(), y = x.add(x) of 1024 floats",
    value: median(times),
    unit: "ms",
    better: "lower",
  }];
}

/** Median ms of a blocking copy to the host, `await x.to(cpu()).data()`. */
async function copy(d: Device, n: number): Promise<Metric[]> {
  const x = rand([n, n], { device: d, seed: 1 });
  await synchronize(d);
  const times: number[] = [];
  for (let i = 0; i < 23; i++) {
    const t = await ms(async () => {
      const y = x.to(cpu());
      await y.data();
      y.dispose();
    });
    if (i >= 3) times.push(t);
  }
  x.dispose();
  return [{
    name: `blocking copy of ${n}x${n} to the host`,
    value: median(times),
    unit: "ms",
    better: "lower",
  }];
}

/** The chapter's "GPU1 & GPU2", median of 5, as bench/two_devices.ts measures it. */
async function twoDevices(devices: Device[], size: number): Promise<Metric[]> {
  const rows: Gpu1Gpu2Timings[] = [];
  for (let r = 0; r < 5; r++) rows.push(await gpu1Gpu2(devices, { size, iters: 50, print: null }));
  const w = `50 x mm ${size}`;
  const m = (f: (r: Gpu1Gpu2Timings) => number) => median(rows.map(f));
  return [
    { name: `T1, ${w}`, value: m((r) => r.gpu1), unit: "s", better: "lower" },
    { name: `T2, ${w}`, value: m((r) => r.gpu2), unit: "s", better: "lower" },
    { name: `T(both), ${w} per device`, value: m((r) => r.both), unit: "s", better: "lower" },
    {
      name: "T(both)/(T1+T2)",
      value: m((r) => r.both / (r.gpu1 + r.gpu2)),
      unit: "",
      better: "lower",
    },
  ];
}

/** The chapter's section 2 and the copy-heavy stream of bench/overlap.ts, median of 3. */
async function chapter(
  d: Device,
  size: number,
  heavySize: number,
  heavyItems: number,
): Promise<Metric[]> {
  const chapterRows: OverlapTimings[] = [];
  const heavyRows: OverlapTimings[] = [];
  for (let r = 0; r < 3; r++) {
    chapterRows.push(await runAndCopy(d, { size, iters: 50, print: null }));
    heavyRows.push(await copyHeavy(d, { size: heavySize, iters: heavyItems, print: null }));
  }
  const m = (rows: OverlapTimings[], f: (r: OverlapTimings) => number) => median(rows.map(f));
  const w = `50 x mm ${size}`;
  const h = `${heavyItems} x add ${heavySize}^2`;
  return [
    { name: `run on GPU1, ${w}`, value: m(chapterRows, (r) => r.run), unit: "s", better: "lower" },
    { name: `copy to CPU, ${w}`, value: m(chapterRows, (r) => r.copy), unit: "s", better: "lower" },
    {
      name: `run on GPU1 and copy to CPU, ${w}`,
      value: m(chapterRows, (r) => r.both),
      unit: "s",
      better: "lower",
    },
    {
      name: "  chapter T(both)/max(T(run), T(copy))",
      value: m(chapterRows, (r) => r.overlapRatio),
      unit: "",
    },
    {
      name: `copy-heavy stream run and copy, ${h}`,
      value: m(heavyRows, (r) => r.both),
      unit: "s",
      better: "lower",
    },
    {
      name: "  copy-heavy T(both)/max(T(run), T(copy))",
      value: m(heavyRows, (r) => r.overlapRatio),
      unit: "",
    },
  ];
}

/** Seconds of `count` products x.mm(x), queued at once, on one device. */
async function products(x: Tensor, count: number): Promise<number> {
  return await ms(async () => {
    for (let i = 0; i < count; i++) x.mm(x).dispose();
    await synchronize(x.device);
  }) / 1000;
}

/** GFLOP/s of x.mm(x), median of 5 runs of 10 products, at each size. */
async function matmul(d: Device, sizes: number[]): Promise<Metric[]> {
  const out: Metric[] = [];
  for (const n of sizes) {
    const x = rand([n, n], { device: d, seed: 1 });
    await products(x, 2); // compiles the kernel
    const gflops: number[] = [];
    for (let r = 0; r < 5; r++) gflops.push(10 * 2 * n ** 3 / (await products(x, 10)) / 1e9);
    x.dispose();
    out.push({
      name: `matmul ${n}, 10 products`,
      value: median(gflops),
      unit: "GFLOP/s",
      better: "higher",
    });
  }
  return out;
}

/** Cores the process keeps busy (CPU seconds / wall seconds) while 20 products run. */
async function cpuUse(d: Device, n: number): Promise<Metric[]> {
  const x = rand([n, n], { device: d, seed: 1 });
  await products(x, 2);
  const rows: { cores: number; cpu: number; wall: number }[] = [];
  for (let r = 0; r < 3; r++) {
    const before = cpuSeconds();
    const wall = await products(x, 20);
    const used = cpuSeconds() - before;
    rows.push({ cores: used / wall, cpu: used, wall });
  }
  x.dispose();
  const threads = d.info.threads ? `, ${d.info.threads} thread(s)` : "";
  return [
    {
      name: `CPU use, 20 x mm ${n} on one device${threads}`,
      value: median(rows.map((r) => r.cores)),
      unit: "cores",
      better: "lower",
    },
    { name: "  wall", value: median(rows.map((r) => r.wall)), unit: "s", better: "lower" },
    { name: "  CPU time", value: median(rows.map((r) => r.cpu)), unit: "s", better: "lower" },
  ];
}

/** Microseconds per op of a chain of 1,000 adds of 1,024 floats, median of 5. */
async function smallOps(d: Device): Promise<Metric[]> {
  const x = rand([1024], { device: d, seed: 1 });
  const chain = async () => {
    let y = x.add(x);
    for (let i = 1; i < 1000; i++) {
      const next = y.add(x);
      y.dispose();
      y = next;
    }
    await y.data();
    y.dispose();
  };
  await chain();
  const times: number[] = [];
  for (let r = 0; r < 5; r++) times.push(await ms(chain));
  x.dispose();
  return [{
    name: "chain of 1,000 adds of 1,024 floats",
    value: median(times), // ms per 1,000 ops = us per op
    unit: "us/op",
    better: "lower",
  }];
}

/**
 * Samples/s of the chapter's MLP at batch 256 on one and two devices, staleness 0 and 1,
 * the four taking turns over slices of 16 batches as bench/mlp.ts does; median of 3.
 */
async function mlp(devices: Device[]): Promise<Metric[]> {
  const batch = 256;
  const { train } = loadMnist();
  const configs = [0, 1].flatMap((staleness) =>
    [[devices[0]], devices.slice(0, 2)].map((on) => ({
      staleness,
      count: on.length,
      mlp: new Trainer(mlpModel({ seed: 1 }), on, { lr: 0.5, staleness }),
      seen: [] as number[],
    }))
  );
  const slice = (c: typeof configs[number], limit: number, seed: number) =>
    trainEpoch(c.mlp, train, { batch, seed, limit });
  for (const c of configs) await slice(c, 2 * batch, 0); // compiles the kernels
  for (let round = 1; round <= 3; round++) {
    for (const c of configs) c.seen.push((await slice(c, 16 * batch, round)).samplesPerSecond);
  }
  for (const c of configs) c.mlp.dispose();
  const out: Metric[] = [];
  for (const staleness of [0, 1]) {
    const [one, two] = configs.filter((c) => c.staleness === staleness).map((c) => median(c.seen));
    const s = `staleness ${staleness}`;
    out.push(
      {
        name: `MLP batch ${batch}, 1 device, ${s}`,
        value: one,
        unit: "samples/s",
        better: "higher",
      },
      {
        name: `MLP batch ${batch}, 2 devices, ${s}`,
        value: two,
        unit: "samples/s",
        better: "higher",
      },
      { name: `  two / one, ${s}`, value: two / one, unit: "", better: "higher" },
    );
  }
  return out;
}

/** Runs the figure asked for; every outcome ends in one JSON line on stdout. */
async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { backend: { type: "string" }, figure: { type: "string" } },
  });
  const backend = values.backend ?? "";
  const figure = values.figure ?? "";
  const report: ProbeReport = { figure, backend, metrics: [] };
  const done = (code: number) => {
    console.log(JSON.stringify(report));
    return code;
  };
  if (backend !== "deno" && backend !== "dawn") {
    report.error = `Cannot probe backend "${backend}": it must be "deno" or "dawn"`;
    return done(2);
  }
  if (!(FIGURES as readonly string[]).includes(figure)) {
    report.error = `Cannot probe figure "${figure}": it must be one of ${FIGURES.join(", ")}`;
    return done(2);
  }
  let devices: Device[];
  try {
    devices = await tryAllGpus({ backend, count: 2 });
  } catch (e) {
    report.error = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    report.startFailed = true;
    return done(1);
  }
  if (devices.length < 2) {
    report.error = `backend "${backend}" found ${devices.length} WebGPU devices, needs 2`;
    report.startFailed = true;
    return done(1);
  }
  const [d] = devices;
  const sw = d.info.software;
  report.adapter = d.info.adapter;
  report.software = sw;
  report.threadsPerDevice = d.info.threads ?? null;
  report.devices = devices.length;
  console.error(
    `[${backend} ${figure}] ${d.info.adapter}, ${d.info.threads ?? "?"} thread(s) per device`,
  );
  const t = performance.now();
  try {
    const f = figure as Figure;
    report.metrics = f === "readback"
      ? await readback(d)
      : f === "copy"
      ? await copy(d, sw ? 512 : 4096)
      : f === "two_devices"
      ? await twoDevices(devices, sw ? 256 : 4000)
      : f === "chapter"
      ? await chapter(d, sw ? 256 : 4000, sw ? 1024 : 4096, sw ? 40 : 200)
      : f === "matmul"
      ? await matmul(d, sw ? [256, 512] : [2048, 4096])
      : f === "cpu"
      ? await cpuUse(d, sw ? 512 : 4096)
      : f === "small_ops"
      ? await smallOps(d)
      : await mlp(devices);
  } catch (e) {
    report.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    await closeDevices().catch(() => {});
    return done(1);
  }
  report.seconds = (performance.now() - t) / 1000;
  // The report goes out before the devices close, so that a crash on closing or at exit
  // still leaves the numbers; bench/backends.ts records the exit status beside them.
  done(0);
  await closeDevices();
  return 0;
}

if (import.meta.main) {
  const code = await main();
  // Let the process end on its own when all went well, so that a crash at exit shows.
  if (code !== 0) Deno.exit(code);
}
