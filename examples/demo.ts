// `deno task demo`: the chapter's experiments on the devices found, with a timings table.
//
//   deno task demo [--size N] [--iters N] [--trace out.json] [--dashboard]
//
// On a real GPU the workload is the chapter's (50 products of 4000x4000 per device); on a
// software adapter (llvmpipe) it is scaled down so each line takes a few seconds.
import { parseArgs } from "node:util";
import { benchmark, cpu, type Device, rand, synchronize, tryAllGpus } from "../mod.ts";
import { lavapipeInstalled, MESA_INSTALL_COMMAND } from "../lib/devices/discovery.ts";
import { gpu1Gpu2 } from "../lib/experiments/gpu1_gpu2.ts";
import { copyHeavy, runAndCopy } from "../lib/experiments/copy_overlap.ts";
import { exportChromeTrace, formatSummary, summarize, trace$, type TraceEvent } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string" },
    iters: { type: "string" },
    trace: { type: "string" },
    dashboard: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log("deno task demo [--size N] [--iters N] [--trace out.json] [--dashboard]");
  Deno.exit(0);
}

function wholeNumber(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a whole number >= 1, got "${raw}"`);
    Deno.exit(2);
  }
  return n;
}

const devices = await tryAllGpus();
const describe = (d: Device) =>
  `${d.name}: ${d.info.adapter} (${d.info.software ? "software" : "hardware"}` +
  `${d.info.threads ? `, ${d.info.threads} thread${d.info.threads === 1 ? "" : "s"}` : ""}` +
  `; backend ${d.info.backend})`;

console.log("autopar demo: the 'Automatic Parallelism' chapter of Dive into Deep Learning\n");
if (devices.length === 0) {
  console.log("No WebGPU adapter found: running on the host (cpu) only.");
  const size = wholeNumber("size", values.size, 128);
  const iters = wholeNumber("iters", values.iters, 10);
  console.log(`Workload: ${iters} products of ${size}x${size} on the host\n`);
  const x = rand([size, size], { device: cpu(), seed: 1 });
  {
    await using _ = benchmark("CPU time");
    for (let i = 0; i < iters; i++) x.mm(x).dispose();
    await synchronize();
  }
  Deno.exit(0);
}

console.log("Devices:");
for (const d of devices) console.log(`  ${describe(d)}`);
const software = devices[0].info.software;
// llvmpipe reached through GL: every device of the process shares one thread pool.
const sharedPool = software && devices[0].info.backend === "deno" && !lavapipeInstalled();
if (sharedPool) {
  console.log(
    `llvmpipe through GL: all devices share one thread pool and cannot compute at once. ` +
      `To fix: ${MESA_INSTALL_COMMAND}`,
  );
}
const size = wholeNumber("size", values.size, software ? 384 : 4000);
const iters = wholeNumber("iters", values.iters, 50);
const scaled = values.size === undefined && software
  ? " (scaled down from the chapter's 4000x4000: the adapter is software)"
  : "";
console.log(`Workload: ${iters} products of ${size}x${size} per device${scaled}`);
if (devices.length < 2) console.log("Only one device: GPU2 is the same device as GPU1.");
// --dashboard: the live dashboard (PORT, else 8000) watches the run, and serves until Ctrl-C.
const dashboard = values.dashboard
  ? await (await import("../server/serve.ts")).serveDashboard({
    devices,
    port: Number(Deno.env.get("PORT") ?? 8000),
  })
  : undefined;
if (dashboard) console.log(`Dashboard: ${dashboard.url}`);
const events: TraceEvent[] = []; // every op's trace event: the summaries and --trace read them
trace$().subscribe((e) => events.push(e));
const traceLine = (span: string) =>
  console.log(`Trace of "${span}": ${formatSummary(summarize(events, { span }))}`);

console.log("\n1. Parallel computation on two devices");
const t = await gpu1Gpu2(devices, { size, iters });
console.log(
  `Speedup of GPU1 & GPU2 against the sum: ${t.speedup.toFixed(2)}x ` +
    `((${t.gpu1.toFixed(4)} + ${t.gpu2.toFixed(4)}) / ${t.both.toFixed(4)} s; 2.00x is perfect)`,
);
traceLine("GPU1 & GPU2");
if (devices.length > 1 && (sharedPool || t.speedup < 1.25)) {
  // Busy lanes are not proof of overlap: a device waiting on a shared pool looks busy too.
  console.log(
    sharedPool
      ? `The devices share one llvmpipe thread pool (GL): the busy figures above count time ` +
        `spent waiting for that pool, not two devices computing at once.`
      : `The devices did not compute at the same time (${t.speedup.toFixed(2)}x): they compete ` +
        `for the same cores or the same adapter, so the busy figures above count waiting.`,
  );
}

console.log("\n2. Parallel computation and communication (run on GPU1 and copy to CPU)");
const c = await runAndCopy(devices[0], { size, iters });
console.log(
  `Time saved by running and copying at once: ${(c.saved * 100).toFixed(0)}% of the sum ` +
    `(${c.run.toFixed(4)} + ${c.copy.toFixed(4)} s against ${c.both.toFixed(4)} s)`,
);
traceLine("Run on GPU1 and copy to CPU");
const heavySize = software ? 1024 : 4096;
const heavyItems = software ? 40 : 200;
console.log(
  `\nCopy-heavy variant: a stream of ${heavyItems} tensors of ${heavySize}x${heavySize}, one add ` +
    `each, copied to the host with copyTo() (where copying costs about as much as computing):`,
);
const h = await copyHeavy(devices[0], { size: heavySize, iters: heavyItems });
console.log(
  `Run and copy took ${h.overlapRatio.toFixed(2)}x the longer of the two alone ` +
    `(1.00x is perfect overlap); ${(h.saved * 100).toFixed(0)}% of the sum saved`,
);
traceLine("Run and copy to CPU (copy-heavy stream)");

const rows: [string, number][] = [
  ["GPU1", t.gpu1],
  ["GPU2", t.gpu2],
  ["GPU1 & GPU2", t.both],
  ["Run on GPU1", c.run],
  ["Copy to CPU", c.copy],
  ["Run on GPU1 and copy to CPU", c.both],
  ["Run (copy-heavy stream)", h.run],
  ["Copy to CPU (copy-heavy stream)", h.copy],
  ["Run and copy to CPU (copy-heavy stream)", h.both],
];
const width = Math.max(...rows.map(([name]) => name.length));
console.log(`\nTimings (s):\n  ${"experiment".padEnd(width)}  seconds`);
for (const [name, sec] of rows) console.log(`  ${name.padEnd(width)}  ${sec.toFixed(4)}`);
if (!dashboard) {
  console.log(
    "\nWatch it live: deno task demo --dashboard (or deno task start) serves the dashboard at " +
      `http://127.0.0.1:${Deno.env.get("PORT") ?? 8000}/`,
  );
}
if (values.trace) {
  await Deno.writeTextFile(values.trace, JSON.stringify(exportChromeTrace(events)));
  console.log(`\nWrote ${events.length} trace events to ${values.trace} (open in ui.perfetto.dev)`);
}
if (dashboard) {
  console.log(`\nThe dashboard keeps serving at ${dashboard.url}: Ctrl-C to stop.`);
  Deno.addSignalListener("SIGINT", () => dashboard.shutdown().then(() => Deno.exit(0)));
  await dashboard.finished;
}
