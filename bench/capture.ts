// Capture and replay of the MLP's training step (784 -> 256 -> 10, SGD), on one device and
// DataParallel over two, three ways side by side: the step run anew each time, its
// recording replayed op by op (`capture(fn, { segments: false })`), and replayed in device
// segments (each run of kernels on a device one op, encoded by the device Worker in one go
// from bind groups and buffers made once; the default). Per way: samples per second, the
// main thread's time to issue one step (the JavaScript a step runs: layers, autograd,
// DataParallel and SGD, or the replay's submissions), per step and per op of the step, and
// the batches each device is sent per step (each becomes at most one command buffer). The
// three take turns for 5 rounds of 16 batches; medians. A third setup, two devices whose
// replicas never exchange gradients, gives what a second device can add (the 1.8x goal).
// Writes bench/results/capture.json.
//
//   deno run -A bench/capture.ts [--batch N]
import { parseArgs } from "node:util";
import { type Device, synchronize, trace$, tryAllGpus } from "../mod.ts";
import { mlp, Trainer } from "../lib/train/trainer.ts";
import { loadMnist } from "../lib/train/mnist.ts";
import { trainEpoch } from "../lib/train/epoch.ts";
import type { WebGpuDevice } from "../lib/devices/webgpu_device.ts";

const { values } = parseArgs({ args: Deno.args, options: { batch: { type: "string" } } });
const batch = Number(values.batch ?? 256);
const ROUNDS = 5;
const BATCHES = 16;
const gpus = await tryAllGpus({ count: 2 });
if (gpus.length < 2) {
  console.log(`bench/capture.ts needs a WebGPU adapter; found ${gpus.length} devices.`);
  Deno.exit(0);
}
const { train } = loadMnist();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const batchesSent = (ds: Device[]) => ds.reduce((n, d) => n + (d as WebGpuDevice).batches, 0);

const WAYS = [
  { name: "step run anew", capture: false as const },
  { name: "replayed op by op", capture: { segments: false } },
  { name: "replayed in segments", capture: { segments: true } },
];

/** A trainer whose step's synchronous part (issuing its ops) is timed. */
function timed(devices: Device[], exchange: boolean, capture: false | { segments: boolean }) {
  const t = new Trainer(mlp({ seed: 1 }), devices, { lr: 0.5, exchange, capture });
  const issue: number[] = [];
  const step = t.step.bind(t);
  t.step = (images, labels, count) => {
    const t0 = performance.now();
    const out = step(images, labels, count);
    issue.push(performance.now() - t0);
    return out;
  };
  return { t, issue };
}

/** The ops of one step (from the trace of a step run anew) and the batches a step sends. */
async function perStep(t: Trainer, devices: Device[]): Promise<{ ops: number; batches: number }> {
  let ops = 0;
  const images = train.images.subarray(0, batch * 784);
  const labels = train.labels.subarray(0, batch);
  await synchronize();
  const sub = trace$().subscribe((e) => {
    if (e.op !== "benchmark") ops++;
  });
  const before = batchesSent(devices);
  const out = t.step(images, labels, batch);
  await synchronize();
  const batches = (batchesSent(devices) - before) / devices.length;
  sub.unsubscribe();
  for (const x of [...out.losses, ...out.logits]) x.dispose();
  return { ops, batches };
}

const setups = [
  { name: "one device", devices: [gpus[0]], exchange: true },
  { name: "two devices", devices: gpus, exchange: true },
  // The ceiling of a second device: each replica steps on its own rows, nothing exchanged.
  { name: "two devices, no gradient exchange", devices: gpus, exchange: false },
];
type Row = {
  name: string;
  samplesPerSecond: number;
  rounds: number[];
  issueMsPerStep: number;
  issueUsPerOp: number;
  batchesPerDevicePerStep: number;
};
const results: {
  setup: string;
  devices: number;
  opsPerStep: number;
  rows: Row[];
  segmentsOverAnew: number;
  segmentsOverOpByOp: number;
}[] = [];
for (const setup of setups) {
  const ways = WAYS.map((w) => ({ ...w, ...timed(setup.devices, setup.exchange, w.capture) }));
  // Warm-up: compiles the kernels; the captured trainers run, record and replay.
  for (const w of ways) await trainEpoch(w.t, train, { batch, limit: 3 * batch, seed: 0 });
  await synchronize();
  const speeds: number[][] = ways.map(() => []);
  const issues: number[][] = ways.map(() => []);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [i, w] of ways.entries()) {
      w.issue.length = 0;
      const r = await trainEpoch(w.t, train, { batch, limit: BATCHES * batch, seed: round });
      speeds[i].push(r.samplesPerSecond);
      issues[i].push(median(w.issue));
    }
  }
  const opsPerStep = (await perStep(ways[0].t, setup.devices)).ops;
  const rows: Row[] = [];
  for (const [i, w] of ways.entries()) {
    const { batches } = await perStep(w.t, setup.devices);
    rows.push({
      name: w.name,
      samplesPerSecond: median(speeds[i]),
      rounds: speeds[i],
      issueMsPerStep: median(issues[i]),
      issueUsPerOp: (median(issues[i]) * 1000) / opsPerStep,
      batchesPerDevicePerStep: batches,
    });
  }
  for (const w of ways) w.t.dispose();
  console.log(`${setup.name}, batch ${batch}, ${opsPerStep} ops per step:`);
  for (const r of rows) {
    console.log(
      `  ${r.name.padEnd(22)} ${r.samplesPerSecond.toFixed(0).padStart(6)} samples/s; issuing ` +
        `a step ${r.issueMsPerStep.toFixed(3)} ms, ${r.issueUsPerOp.toFixed(1)} us per op; ` +
        `${r.batchesPerDevicePerStep} batches per device`,
    );
  }
  const ratio = (a: number, b: number) => rows[a].samplesPerSecond / rows[b].samplesPerSecond;
  console.log(
    `  segments / anew ${ratio(2, 0).toFixed(2)}x, segments / op by op ${ratio(2, 1).toFixed(2)}x`,
  );
  results.push({
    setup: setup.name,
    devices: setup.devices.length,
    opsPerStep,
    rows,
    segmentsOverAnew: ratio(2, 0),
    segmentsOverOpByOp: ratio(2, 1),
  });
}
// What a second device gives without gradient traffic, per way (goal: >= 1.8x one device).
const scaling = Object.fromEntries(WAYS.map((w, i) => [
  w.name,
  results[2].rows[i].samplesPerSecond / results[0].rows[i].samplesPerSecond,
]));
console.log(
  "two devices without exchange / one device: " +
    Object.entries(scaling).map(([k, v]) => `${k} ${v.toFixed(2)}x`).join(", "),
);
const result = {
  date: new Date().toISOString(),
  adapter: gpus[0].info.adapter,
  backend: gpus[0].info.backend,
  cores: navigator.hardwareConcurrency,
  batch,
  rounds: ROUNDS,
  batchesPerRound: BATCHES,
  results,
  twoDevicesNoExchangeOverOne: scaling,
  goals: { replayedIssueUsPerOp: 10, twoDevicesNoExchangeOverOne: 1.8 },
};
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/capture.json", import.meta.url),
  JSON.stringify(result, null, 2) + "\n",
);
Deno.exit(0);
