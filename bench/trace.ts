// Benchmark of tracing: the cost of a subscriber to trace$() with device timestamps, and
// without them, against nobody subscribed (tracing off), for 1,000 small ops and for the
// chapter's workload (the "GPU1 & GPU2" experiment). The three modes run side by side in
// each rep, in a rotating order; ratios are medians of the per-rep ratios. Writes
// bench/results/trace.json.
//
//   deno run -A bench/trace.ts [--size N] [--iters N] [--reps N]
import { parseArgs } from "node:util";
import { gpu1Gpu2 } from "../lib/experiments/gpu1_gpu2.ts";
import {
  configureEngine,
  ones,
  summarize,
  synchronize,
  trace$,
  type TraceEvent,
  tryAllGpus,
} from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { size: { type: "string" }, iters: { type: "string" }, reps: { type: "string" } },
});
const devices = await tryAllGpus({ count: 2 });
if (devices.length === 0) {
  console.log("bench/trace.ts needs a WebGPU adapter; found none.");
  Deno.exit(0);
}
const [device] = devices;
const software = device.info.software;
const size = Number(values.size ?? (software ? 384 : 4000));
const iters = Number(values.iters ?? 50);
const reps = Number(values.reps ?? 9);
const timestampQuery = device.info.features.includes("timestamp-query");

type Mode = "off" | "timestamps" | "noTimestamps";
const MODES: Mode[] = ["off", "timestamps", "noTimestamps"];

/** Runs `work` with tracing in `mode`; returns its seconds and the events it traced. */
async function inMode(mode: Mode, work: () => Promise<number>) {
  const events: TraceEvent[] = [];
  configureEngine({ deviceTiming: mode === "timestamps" });
  const sub = mode === "off" ? undefined : trace$().subscribe((e) => events.push(e));
  try {
    return { seconds: await work(), events };
  } finally {
    sub?.unsubscribe();
    configureEngine({ deviceTiming: true });
  }
}

const x = ones([1024], { device });
await synchronize();
async function smallOps(): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < 1000; i++) x.add(i).dispose();
  await synchronize();
  return (performance.now() - t) / 1000;
}
/** The chapter's workload: the seconds of its three lines (GPU1, GPU2, GPU1 & GPU2). */
async function chapter(): Promise<number> {
  const t = await gpu1Gpu2(devices, { size, iters, print: null });
  return t.gpu1 + t.gpu2 + t.both;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function measure(work: () => Promise<number>, reps: number) {
  await inMode("off", work); // warm-up
  const runs: Record<Mode, number>[] = [];
  let efficiency = NaN;
  for (let r = 0; r < reps; r++) {
    const row = {} as Record<Mode, number>;
    for (let k = 0; k < MODES.length; k++) {
      const mode = MODES[(r + k) % MODES.length];
      const { seconds, events } = await inMode(mode, work);
      row[mode] = seconds;
      if (mode === "timestamps" && events.some((e) => e.label === "GPU1 & GPU2")) {
        efficiency = summarize(events, { span: "GPU1 & GPU2" }).efficiency;
      }
    }
    runs.push(row);
  }
  return {
    median: Object.fromEntries(MODES.map((m) => [m, median(runs.map((r) => r[m]))])),
    ratio: {
      timestamps: median(runs.map((r) => r.timestamps / r.off)),
      noTimestamps: median(runs.map((r) => r.noTimestamps / r.off)),
    },
    efficiency: Number.isNaN(efficiency) ? undefined : efficiency,
    runs,
  };
}

// Small ops take a fraction of a second: more reps for the same wall time.
const small = await measure(smallOps, reps * 3);
const big = await measure(chapter, reps);
x.dispose();

const result = {
  benchmark: "trace",
  date: new Date().toISOString(),
  hardware: {
    adapter: device.info.adapter,
    software,
    cores: navigator.hardwareConcurrency,
    devices: devices.length,
    threadsPerDevice: device.info.threads ?? null,
    timestampQuery,
  },
  modes: {
    off: "nobody subscribed to trace$()",
    timestamps: "a subscriber; device timestamps on",
    noTimestamps: "a subscriber; deviceTiming: false",
  },
  smallOps: { workload: { ops: 1000, op: "add of 1,024 floats" }, reps: reps * 3, ...small },
  // efficiency: summarize(events, { span: "GPU1 & GPU2" }) of the last rep with timestamps
  chapter: {
    workload: { experiment: "gpu1Gpu2", size, iters, seconds: "GPU1 + GPU2 + GPU1 & GPU2" },
    reps,
    ...big,
  },
  goals: { chapterTimestampsRatio: 1.05 },
};
const f = (v: number) => v.toFixed(4);
console.log(
  `tracing cost on ${devices.length} device(s) (${device.info.adapter}), medians`,
);
console.log("                         off (s)   timestamps (s)  no timestamps (s)  ratios");
for (
  const [name, m] of [["1,000 small ops", small], [`chapter ${iters}x mm ${size}`, big]] as const
) {
  console.log(
    `${name.padEnd(25)}${f(m.median.off)}    ${f(m.median.timestamps)}          ` +
      `${f(m.median.noTimestamps)}             ${m.ratio.timestamps.toFixed(3)}x / ` +
      `${m.ratio.noTimestamps.toFixed(3)}x`,
  );
}
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/trace.json", import.meta.url),
  JSON.stringify(result, null, 2) + "\n",
);
