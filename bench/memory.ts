// Memory over time of the chapter's MLP (784 -> 256 -> 10, SGD) at batch 256 on MNIST digits,
// trained on one device for 1,000 steps run anew each time and 1,000 captured steps: the
// process's RSS, the main thread's heap, the engine's live device buffers and bytes and the
// host's values at steps 100, 500 and 1,000, each after the work queued so far and a full
// collection of the main thread's heap. The goal: flat within 5% from step 100 on. Steps run
// anew make WebGPU objects in the device Worker whose native memory waits for that Worker's
// collector, which nothing here can run: their RSS climbs for a while. Writes
// bench/results/memory.json.
//
//   deno run -A bench/memory.ts [--steps N] [--batch N]
import v8 from "node:v8";
import vm from "node:vm";
import { parseArgs } from "node:util";
import { type Device, synchronize, tryAllGpus } from "../mod.ts";
import { engine } from "../lib/engine/engine.ts";
import { hostRuntime } from "../lib/devices/host_runtime.ts";
import { mlp, Trainer } from "../lib/train/trainer.ts";
import { loadMnist } from "../lib/train/mnist.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "1000" },
    batch: { type: "string", default: "256" },
  },
});
const steps = Number(values.steps);
const batch = Number(values.batch);
const at = [100, 500, 1000].filter((s) => s <= steps);
const [device] = await tryAllGpus({ count: 1 });
if (device === undefined) {
  console.log("bench/memory.ts needs a WebGPU adapter; found none.");
  Deno.exit(0);
}
v8.setFlagsFromString("--expose-gc");
const gc = (globalThis as { gc?: () => void }).gc ?? vm.runInNewContext("gc") as () => void;
const { train } = loadMnist();
const MiB = 2 ** 20;

/** What is held after the work queued so far and a full collection. */
async function sample(step: number) {
  await synchronize();
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc();
  const { count, bytes } = engine().liveBuffers();
  const { rss, heapUsed } = Deno.memoryUsage();
  return {
    step,
    rssMiB: rss / MiB,
    heapMiB: heapUsed / MiB,
    deviceBuffers: count,
    deviceBytes: bytes,
    hostValues: hostRuntime().size,
  };
}

/** Trains for `steps` steps on consecutive batches of the training digits. */
async function run(on: Device, capture: boolean) {
  const trainer = new Trainer(mlp({ seed: 1 }), [on], { lr: 0.1, capture });
  const batches = Math.floor(train.count / batch);
  const samples = [];
  const start = performance.now();
  for (let s = 1; s <= steps; s++) {
    const b = (s - 1) % batches;
    const out = trainer.step(
      train.images.subarray(b * batch * 784),
      train.labels.subarray(b * batch),
      batch,
    );
    for (const t of [...out.losses, ...out.logits]) t.dispose();
    if (s % 50 === 0) await synchronize();
    if (at.includes(s)) samples.push(await sample(s));
  }
  const seconds = (performance.now() - start) / 1000;
  trainer.dispose();
  const first = samples[0];
  const last = samples[samples.length - 1];
  const growth = (key: "rssMiB" | "heapMiB" | "deviceBytes") =>
    first[key] === 0 ? 0 : (last[key] - first[key]) / first[key];
  const result = {
    capture,
    seconds,
    samples,
    growthFromStep100: {
      rss: growth("rssMiB"),
      heap: growth("heapMiB"),
      deviceBytes: growth("deviceBytes"),
    },
  };
  console.log(`  ${capture ? "captured" : "uncaptured"} (${seconds.toFixed(1)} s):`);
  for (const s of samples) {
    console.log(
      `    step ${s.step}: RSS ${s.rssMiB.toFixed(1)} MiB, heap ${s.heapMiB.toFixed(1)} MiB, ` +
        `${s.deviceBuffers} device buffers of ${(s.deviceBytes / MiB).toFixed(3)} MiB, ` +
        `${s.hostValues} host values`,
    );
  }
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(
    `    from step ${first.step}: RSS ${pct(result.growthFromStep100.rss)}, heap ` +
      `${pct(result.growthFromStep100.heap)}, device bytes ${
        pct(result.growthFromStep100.deviceBytes)
      }`,
  );
  return result;
}

console.log(
  `MLP 784 -> 256 -> 10, batch ${batch}, ${steps} steps on ${device.name} ` +
    `(${device.info.adapter}, ${device.info.threads ?? "?"} thread(s))`,
);
const uncaptured = await run(device, false);
const captured = await run(device, true);
const result = {
  date: new Date().toISOString(),
  adapter: device.info.adapter,
  cores: navigator.hardwareConcurrency,
  batch,
  steps,
  uncaptured,
  captured,
  goal: { growthFromStep100: 0.05 },
};
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/memory.json", import.meta.url),
  JSON.stringify(result, null, 2) + "\n",
);
Deno.exit(0);
