// Memory over time: 1,000 training steps, captured and not, on the host and on a GPU, keep
// the device buffers, the host's values, the main thread's heap and the process's RSS flat
// after warm-up, and let go of every version of a parameter that later steps replaced.
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { cpu, type Device, synchronize, type Tensor, tryAllGpus } from "../../mod.ts";
import { engine, type TensorRecord } from "../../lib/engine/engine.ts";
import { hostRuntime } from "../../lib/devices/host_runtime.ts";
import { recordOf } from "../../lib/tensor/tensor.ts";
import { latest } from "../../lib/engine/capture.ts";
import { mulberry32 } from "../../lib/train/mnist.ts";
import { mlp, Trainer } from "../../lib/train/trainer.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });

/** V8's collector: --expose-gc's, or the same turned on now (node:v8, as in Node). */
function collector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}
const gc = collector();

const STEPS = 1000;
/** RSS and the heap settle over the first steps (V8's new space grows, kernels compile). */
const WARM_UP = 200;
const dims = { inputs: 16, hidden: 32, outputs: 4 };
const rows = 32;
const random = mulberry32(7);
const images = Float32Array.from({ length: rows * dims.inputs }, () => random() * 2 - 1);
const labels = Float32Array.from({ length: rows }, (_, r) => r % dims.outputs);

interface Sample {
  buffers: number;
  bytes: number;
  hostValues: number;
  heap: number;
  rss: number;
}

/** After the work queued so far and a full collection (WeakRefs are cleared a task later). */
async function sample(): Promise<Sample> {
  await synchronize();
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc();
  const { count, bytes } = engine().liveBuffers();
  const { heapUsed, rss } = Deno.memoryUsage();
  return { buffers: count, bytes, hostValues: hostRuntime().size, heap: heapUsed, rss };
}

interface Run {
  before: Sample;
  warm: Sample;
  end: Sample;
  after: Sample;
  /**
   * Versions of the parameters, current 100 steps after warm-up, still alive at the end while
   * the versions of warm-up are held (as a Tensor not used since, or a captured step, holds
   * its version): none should be, or each held version would keep all later ones alive.
   */
  versionsKept: number;
}

/** Trains the small MLP on `device` for {@link STEPS} steps, sampling at warm-up and the end. */
async function train(device: Device, capture: boolean): Promise<Run> {
  const before = await sample();
  const trainer = new Trainer(mlp({ ...dims, seed: 3 }), [device], { lr: 0.1, capture });
  const params: Tensor[] = trainer.dp.parameters();
  let warm = before;
  let held: TensorRecord[] = [];
  let versions: WeakRef<TensorRecord>[] = [];
  for (let s = 1; s <= STEPS; s++) {
    const out = trainer.step(images, labels, rows);
    for (const t of [...out.losses, ...out.logits]) t.dispose();
    // Steps are queued without waiting; the engine's bounds on work in flight hold them back.
    if (s % 50 === 0) await synchronize();
    if (s === WARM_UP) {
      warm = await sample();
      held = params.map(recordOf);
    }
    if (s === WARM_UP + 100) versions = held.map((r) => new WeakRef(latest(r)));
  }
  const end = await sample();
  const versionsKept = versions.filter((v) => v.deref() !== undefined).length;
  assert.equal(held.length, params.length);
  trainer.dispose();
  return { before, warm, end, after: await sample(), versionsKept };
}

const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
const growth = (from: number, to: number) => (to - from) / from;

/** The assertions every setup shares: nothing the engine counts grows, nothing outlives it. */
function assertFlat(run: Run, name: string): void {
  const { before, warm, end, after } = run;
  assert.equal(end.buffers, warm.buffers, `${name}: device buffers at warm-up and at the end`);
  assert.equal(end.bytes, warm.bytes, `${name}: device bytes at warm-up and at the end`);
  assert.equal(end.hostValues, warm.hostValues, `${name}: host values at warm-up and at the end`);
  assert.equal(run.versionsKept, 0, `${name}: versions of step ${WARM_UP + 100} still alive`);
  assert.ok(
    growth(warm.heap, end.heap) < 0.05,
    `${name}: the heap grew from ${MiB(warm.heap)} to ${MiB(end.heap)}`,
  );
  assert.equal(after.buffers, before.buffers, `${name}: device buffers left after dispose`);
  assert.equal(after.bytes, before.bytes, `${name}: device bytes left after dispose`);
  assert.equal(after.hostValues, before.hostValues, `${name}: host values left after dispose`);
}

for (const capture of [false, true]) {
  const how = capture ? "captured" : "uncaptured";
  Deno.test(
    `1,000 ${how} steps on the host keep host values, heap and RSS flat after warm-up`,
    opts,
    async () => {
      const run = await train(cpu(), capture);
      assertFlat(run, `host, ${how}`);
      assert.equal(run.warm.buffers, run.before.buffers, "host training made device buffers");
      assert.ok(
        growth(run.warm.rss, run.end.rss) < 0.05,
        `RSS grew from ${MiB(run.warm.rss)} to ${MiB(run.end.rss)}`,
      );
    },
  );
}

Deno.test(
  "1,000 uncaptured steps on a GPU keep device buffers, bytes, host values, heap and RSS flat",
  opts,
  async () => {
    const run = await train(gpu, false);
    assertFlat(run, "GPU, uncaptured");
    assert.ok(run.warm.buffers > run.before.buffers, "the parameters made no device buffers");
    // Op by op, pooled buffers come back in new pairings, so the Worker keeps making bind
    // groups, whose native memory only a collection frees: RSS rose 7-20% until the runner
    // bounded its cache and collected what it dropped (lib/devices/collect_garbage.ts).
    assert.ok(
      growth(run.warm.rss, run.end.rss) < 0.05,
      `RSS grew from ${MiB(run.warm.rss)} to ${MiB(run.end.rss)}`,
    );
  },
);

Deno.test(
  "1,000 captured steps on a GPU keep device buffers, bytes, host values, heap and RSS flat",
  opts,
  async () => {
    const run = await train(gpu, true);
    assertFlat(run, "GPU, captured");
    assert.ok(run.warm.buffers > run.before.buffers, "the parameters made no device buffers");
    assert.ok(
      growth(run.warm.rss, run.end.rss) < 0.05,
      `RSS grew from ${MiB(run.warm.rss)} to ${MiB(run.end.rss)}`,
    );
  },
);
