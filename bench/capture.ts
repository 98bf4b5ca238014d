// Capture and replay of the MLP's training step (784 -> 256 -> 10, DataParallel over two
// devices, SGD), side by side with the same step run anew each time: samples per second,
// and the main thread's time to issue one step (the JavaScript a step runs: layers,
// autograd, DataParallel and SGD, or the replay's resubmission), per step and per op. The
// two take turns for 5 rounds of 16 batches; medians. Writes bench/results/capture.json.
//
//   deno run -A bench/capture.ts [--batch N]
import { parseArgs } from "node:util";
import { synchronize, trace$, tryAllGpus } from "../mod.ts";
import { mlp, Trainer } from "../lib/train/trainer.ts";
import { loadMnist } from "../lib/train/mnist.ts";
import { trainEpoch } from "../lib/train/epoch.ts";

const { values } = parseArgs({ args: Deno.args, options: { batch: { type: "string" } } });
const batch = Number(values.batch ?? 256);
const devices = await tryAllGpus({ count: 2 });
if (devices.length < 2) {
  console.log(`bench/capture.ts needs a WebGPU adapter; found ${devices.length} devices.`);
  Deno.exit(0);
}
const { train } = loadMnist();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A trainer whose step's synchronous part (issuing its ops) is timed. */
function timed(capture: boolean) {
  const t = new Trainer(mlp({ seed: 1 }), devices, { lr: 0.5, capture });
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

const configs = [
  { name: "step run anew", ...timed(false) },
  { name: "captured step, replayed", ...timed(true) },
];
// Warm-up: compiles the kernels, and the captured trainer runs, records and replays.
for (const c of configs) await trainEpoch(c.t, train, { batch, limit: 3 * batch, seed: 0 });
await synchronize();
const speeds: number[][] = configs.map(() => []);
const issues: number[][] = configs.map(() => []);
for (let round = 1; round <= 5; round++) {
  for (const [i, c] of configs.entries()) {
    c.issue.length = 0;
    const r = await trainEpoch(c.t, train, { batch, limit: 16 * batch, seed: round });
    speeds[i].push(r.samplesPerSecond);
    issues[i].push(median(c.issue));
  }
}
// The ops of one step, from the trace of a step run anew.
const opsPerStep = await countOps(configs[0].t);
async function countOps(t: Trainer): Promise<number> {
  let n = 0;
  const sub = trace$().subscribe((e) => {
    if (e.op !== "benchmark") n++;
  });
  const images = train.images.subarray(0, batch * 784);
  const labels = train.labels.subarray(0, batch);
  const out = t.step(images, labels, batch);
  await synchronize();
  sub.unsubscribe();
  for (const x of [...out.losses, ...out.logits]) x.dispose();
  return n;
}
const rows = configs.map((c, i) => ({
  name: c.name,
  samplesPerSecond: median(speeds[i]),
  issueMsPerStep: median(issues[i]),
  issueUsPerOp: (median(issues[i]) * 1000) / opsPerStep,
}));
for (const r of rows) {
  console.log(
    `  ${r.name.padEnd(26)} ${r.samplesPerSecond.toFixed(0)} samples/s; issuing a step: ` +
      `${r.issueMsPerStep.toFixed(3)} ms, ${r.issueUsPerOp.toFixed(1)} us per op`,
  );
}
const result = {
  date: new Date().toISOString(),
  adapter: devices[0].info.adapter,
  backend: devices[0].info.backend,
  cores: navigator.hardwareConcurrency,
  batch,
  opsPerStep,
  rows,
  replayedOverAnew: rows[1].samplesPerSecond / rows[0].samplesPerSecond,
  goals: { replayedIssueUsPerOp: 10 },
};
console.log(
  `replayed / anew: ${result.replayedOverAnew.toFixed(2)} samples/s; ${opsPerStep} ops per step; ` +
    `issuing a replayed step: ${rows[1].issueUsPerOp.toFixed(1)} us of main-thread time per op ` +
    `(goal <= 10)`,
);
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/capture.json", import.meta.url),
  JSON.stringify(result, null, 2) + "\n",
);
Deno.exit(0);
