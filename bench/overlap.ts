// Benchmark of the chapter's "run on GPU1 and copy to CPU" experiment: T(run), T(copy),
// T(run and copy) and T(run and copy) / max(T(run), T(copy)) for the chapter's workload and
// for a copy-heavy stream; and the peak of device buffers and of process memory of a
// 10,000-tensor stream against a 100-tensor one. Writes bench/results/overlap.json.
//
//   deno run -A bench/overlap.ts [--size N] [--iters N] [--reps N]
import { parseArgs } from "node:util";
import { lastValueFrom, mergeMap } from "npm:rxjs@7.8.2";
import { copyHeavy, type OverlapTimings, runAndCopy } from "../lib/experiments/copy_overlap.ts";
import { engine } from "../lib/engine/engine.ts";
import { copyTo, cpu, produce, rand, synchronize, trace$, tryAllGpus } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { size: { type: "string" }, iters: { type: "string" }, reps: { type: "string" } },
});
const [device] = await tryAllGpus({ count: 2 });
if (!device) {
  console.log("bench/overlap.ts needs a WebGPU adapter; found none.");
  Deno.exit(0);
}
const software = device.info.software;
const size = Number(values.size ?? (software ? 384 : 4000));
const iters = Number(values.iters ?? 50);
const reps = Number(values.reps ?? 5);
const heavySize = software ? 1024 : 4096;
const heavyItems = software ? 40 : 200;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = (rows: OverlapTimings[]) => ({
  run: median(rows.map((r) => r.run)),
  copy: median(rows.map((r) => r.copy)),
  both: median(rows.map((r) => r.both)),
  overlapRatio: median(rows.map((r) => r.overlapRatio)),
  saved: median(rows.map((r) => r.saved)),
});

const chapter: OverlapTimings[] = [];
const heavy: OverlapTimings[] = [];
for (let r = 0; r < reps; r++) {
  chapter.push(await runAndCopy(device, { size, iters, print: null }));
  heavy.push(await copyHeavy(device, { size: heavySize, iters: heavyItems, print: null }));
}

/** Streams `n` tensors of 64K floats through copyTo and reports the peaks it reached. */
async function streamPeaks(n: number) {
  const x = rand([256, 256], { device, seed: 1 });
  await synchronize();
  const base = engine().liveBuffers();
  let buffers = 0;
  let bytes = 0;
  let rss = 0;
  const look = () => {
    const live = engine().liveBuffers();
    buffers = Math.max(buffers, live.count - base.count);
    bytes = Math.max(bytes, live.bytes - base.bytes);
    rss = Math.max(rss, Deno.memoryUsage().rss);
  };
  const sub = trace$().subscribe(look);
  const t = performance.now();
  await lastValueFrom(
    produce(n, (i) => x.add(i), { inFlight: 8 }).pipe(
      copyTo(cpu(), { concurrency: 8 }),
      mergeMap(async (y) => {
        await y.data();
        y.dispose();
        look();
      }),
    ),
    { defaultValue: undefined },
  );
  sub.unsubscribe();
  x.dispose();
  return {
    n,
    seconds: (performance.now() - t) / 1000,
    peakBuffers: buffers,
    peakBytes: bytes,
    peakRss: rss,
  };
}
const small = await streamPeaks(100);
const large = await streamPeaks(10_000);

const result = {
  benchmark: "overlap",
  date: new Date().toISOString(),
  hardware: {
    adapter: device.info.adapter,
    software,
    cores: navigator.hardwareConcurrency,
    threadsPerDevice: device.info.threads ?? null,
  },
  chapter: { workload: { size, iters }, reps, median: summary(chapter), runs: chapter },
  copyHeavy: {
    workload: { size: heavySize, items: heavyItems, inFlight: 4, concurrency: 4 },
    reps,
    median: summary(heavy),
    runs: heavy,
  },
  memory: {
    small,
    large,
    peakBuffersRatio: large.peakBuffers / small.peakBuffers,
    peakRssRatio: large.peakRss / small.peakRss,
  },
  goals: { copyHeavyOverlapRatio: 1.15, memory: "flat" },
};
const f = (x: number) => x.toFixed(4);
const row = (name: string, m: ReturnType<typeof summary>) =>
  console.log(`${name.padEnd(26)}${f(m.run)}   ${f(m.copy)}   ${f(m.both)}   ${f(m.overlapRatio)}`);
console.log(`run and copy on ${device.name} (${device.info.adapter}), median of ${reps} runs`);
console.log("                          T(run)   T(copy)  T(both)  T(both)/max");
row(`chapter ${iters}x mm ${size}`, result.chapter.median);
row(`copy-heavy ${heavyItems}x ${heavySize}^2`, result.copyHeavy.median);
console.log(
  `stream of 100: peak ${small.peakBuffers} device buffers, rss ${
    (small.peakRss / 2 ** 20).toFixed(0)
  } MiB; ` +
    `of 10,000: peak ${large.peakBuffers} buffers, rss ${(large.peakRss / 2 ** 20).toFixed(0)} MiB`,
);
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/overlap.json", import.meta.url),
  JSON.stringify(result, null, 2) + "\n",
);
