// Benchmark of the book's MLP (784 -> 256 -> 10) on real MNIST digits, trained as `deno
// task train` trains it (Linear and ReLU layers, autograd, SGD, DataParallel): samples per
// second on the host only, on one device and on two devices, synchronous and with
// one-step-delayed updates (staleness 1), against two devices whose gradients never leave
// them (the ceiling of what a second device can give here), against the same MLP with its
// gradients written by hand (bench/manual_mlp.ts, what autograd replaced: its cost), and the
// same MLP trained by tfjs-backend-webgpu with tfjs's own gradients, all in this process on
// the same adapter; how the two-device speed-up grows with the batch; and the test accuracy
// after 10 epochs on two devices. Writes bench/results/mlp.json.
//
// The throughput configurations take turns, round after round, so that a noisy machine
// slows them alike; the figures are medians over the rounds. No trace is recorded while they
// are timed; the share of gradient traffic hidden under computation comes from one more
// traced round.
//
//   deno run -A bench/mlp.ts [--epochs N] [--batch N] [--lr X] [--rounds N] [--acc-batch N]
import { parseArgs } from "node:util";
// tfjs's CommonJS bundles: its ES modules' gradient registry has extensionless imports that
// Deno cannot load, the bundles carry the gradients and share one tfjs-core instance.
import tfjsBundle from "npm:@tensorflow/tfjs@4.22.0/dist/tf.node.js";
import type * as TF from "npm:@tensorflow/tfjs-core@4.22.0";
import "npm:@tensorflow/tfjs-backend-webgpu@4.22.0/dist/tf-backend-webgpu.node.js";
import { cpu, type Device, trace$, type TraceEvent, tryAllGpus } from "../mod.ts";
import { DataParallelMlp } from "./manual_mlp.ts";
import { mlp, Trainer } from "../lib/train/trainer.ts";
import type { EpochTrainer } from "../lib/train/epoch.ts";
import { type Dataset, loadMnist, mulberry32, shuffle } from "../lib/train/mnist.ts";
import { trainEpoch } from "../lib/train/epoch.ts";
import { gradientTraffic } from "../lib/train/traffic.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    epochs: { type: "string", default: "10" },
    batch: { type: "string", default: "256" },
    lr: { type: "string", default: "0.5" },
    rounds: { type: "string", default: "5" },
    "acc-batch": { type: "string", default: "64" },
  },
});
const tf = tfjsBundle as unknown as typeof TF;
const epochs = Number(values.epochs);
const batch = Number(values.batch);
const lr = Number(values.lr);
const rounds = Number(values.rounds);
const accBatch = Number(values["acc-batch"]);
const devices = await tryAllGpus({ count: 2 });
if (devices.length < 2) {
  console.log(`bench/mlp.ts needs a WebGPU adapter; found ${devices.length} devices.`);
  Deno.exit(0);
}
const { train, test } = loadMnist();
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** One way of training, timed a slice of an epoch at a time. */
interface Config {
  name: string;
  /** Trains `limit` samples (seed: the order) and returns samples per second. */
  slice(limit: number, seed: number): Promise<number>;
  mlp: EpochTrainer & { dispose(): void };
}

function autopar(name: string, on: Device[], b: number, staleness: number): Config {
  const trainer = new Trainer(mlp({ seed: 1 }), on, { lr, staleness });
  return {
    name,
    mlp: trainer,
    slice: async (limit, seed) =>
      (await trainEpoch(trainer, train, { batch: b, seed, limit })).samplesPerSecond,
  };
}

/** The hand-written baseline (bench/manual_mlp.ts): the same step without autograd. */
function manual(name: string, on: Device[], b: number): Config {
  const m = new DataParallelMlp(on, { lr, seed: 1 });
  return {
    name,
    mlp: m,
    slice: async (limit, seed) =>
      (await trainEpoch(m, train, { batch: b, seed, limit })).samplesPerSecond,
  };
}

/**
 * A data-parallel step's work with each replica updated by its own gradients (`exchange:
 * false`): nothing is copied. Two devices of it over one is what the second device can give
 * at most.
 */
function noTraffic(on: Device[], b: number): Config {
  const trainer = new Trainer(mlp({ seed: 1 }), on, { lr, exchange: false });
  return {
    name: `${on.length === 1 ? "one device" : "two devices"}, no gradient traffic`,
    mlp: trainer,
    slice: async (limit, seed) =>
      (await trainEpoch(trainer, train, { batch: b, seed, limit })).samplesPerSecond,
  };
}

/** Medians of samples per second of `configs`, taking turns for `n` rounds of `limit`. */
async function race(configs: Config[], n: number, limit: number): Promise<number[]> {
  for (const c of configs) await c.slice(Math.min(limit, 2 * batch), 0); // compiles kernels
  const seen: number[][] = configs.map(() => []);
  for (let round = 1; round <= n; round++) {
    for (const [i, c] of configs.entries()) seen[i].push(await c.slice(limit, round));
  }
  return seen.map(median);
}

/** Share of the gradient traffic hidden under computation, over one traced slice. */
async function hidden(c: Config, limit: number): Promise<number | undefined> {
  const events: TraceEvent[] = [];
  const sub = trace$().subscribe((e) => events.push(e));
  await c.slice(limit, 99);
  sub.unsubscribe();
  const t = gradientTraffic(events);
  return t.total > 0 ? t.hiddenAnyDevice / t.total : undefined;
}

/** The same MLP, initialisation scheme, batches and SGD in tfjs-core on its WebGPU backend. */
async function tfjs(
  n: number,
): Promise<{ samplesPerSecond: number; testAccuracy: number }> {
  await tf.setBackend("webgpu");
  await tf.ready();
  const glorot = (shape: [number, number]) => {
    const a = Math.sqrt(6 / (shape[0] + shape[1]));
    return tf.variable(tf.randomUniform(shape, -a, a, "float32", 1));
  };
  const w1 = glorot([784, 256]);
  const b1 = tf.variable(tf.zeros([256]));
  const w2 = glorot([256, 10]);
  const b2 = tf.variable(tf.zeros([10]));
  const forward = (x: TF.Tensor) =>
    tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2);
  // tfjs's own gradients: optimizer.minimize differentiates the loss (tf.variableGrads).
  const sgd = tf.train.sgd(lr);
  const step = (x: TF.Tensor2D, y: TF.Tensor2D): TF.Scalar => {
    const rows = x.shape[0];
    let sum: TF.Scalar | undefined;
    sgd.minimize(
      () => {
        const s = tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(forward(x))))) as TF.Scalar;
        sum = tf.keep(s);
        return tf.div(s, rows) as TF.Scalar;
      },
      false,
      [w1, b1, w2, b2],
    );
    return sum!;
  };
  const epoch = async (data: Dataset, seed: number, limit = data.count) => {
    const order = shuffle(Array.from({ length: limit }, (_, i) => i), mulberry32(seed));
    let total: TF.Tensor = tf.scalar(0); // a running sum: tfjs-webgpu's addN of many tensors is wrong
    const start = performance.now();
    for (let from = 0; from < limit; from += batch) {
      const rows = order.slice(from, from + batch);
      const images = new Float32Array(rows.length * 784);
      rows.forEach((i, r) => images.set(data.images.subarray(i * 784, (i + 1) * 784), r * 784));
      const labels = Int32Array.from(rows, (i) => data.labels[i]);
      const loss = tf.tidy(() => {
        const x = tf.tensor2d(images, [rows.length, 784]);
        const y = tf.oneHot(tf.tensor1d(labels, "int32"), 10) as TF.Tensor2D;
        return step(x, y);
      });
      const next = tf.add(total, loss); // loss: the sum over the batch
      tf.dispose([total, loss]);
      total = next;
    }
    const sum = (await total.data())[0];
    const seconds = (performance.now() - start) / 1000;
    total.dispose();
    return {
      loss: sum / limit,
      seconds,
      samplesPerSecond: limit / seconds,
    };
  };
  await epoch(train, 0, batch); // warm-up: compiles the shaders
  const runs: { samplesPerSecond: number }[] = [];
  for (let e = 1; e <= n; e++) {
    const r = await epoch(train, e);
    runs.push(r);
    console.log(
      `  tfjs epoch ${e}: loss ${r.loss.toFixed(4)}, ${r.samplesPerSecond.toFixed(0)} samples/s`,
    );
  }
  const logits = tf.tidy(() => tf.argMax(forward(tf.tensor2d(test.images, [test.count, 784])), 1));
  const predicted = Array.from(await logits.data() as Int32Array);
  logits.dispose();
  const correct = predicted.reduce(
    (s: number, p: number, i: number) => s + (p === test.labels[i] ? 1 : 0),
    0,
  );
  return {
    samplesPerSecond: median(runs.map((r) => r.samplesPerSecond)),
    testAccuracy: correct / test.count,
  };
}

console.log(
  `MLP 784 -> 256 -> 10 on MNIST (${train.count} train, ${test.count} test), batch ${batch}, ` +
    `lr ${lr}; ${devices[0].info.adapter}, ${devices[0].info.threads ?? "?"} thread(s) per device`,
);
const one = [devices[0]];
const configs = [
  autopar("one device", one, batch, 0),
  autopar("two devices", devices, batch, 0),
  autopar("one device, staleness 1", one, batch, 1),
  autopar("two devices, staleness 1", devices, batch, 1),
  noTraffic(one, batch),
  noTraffic(devices, batch),
  manual("one device, hand-written gradients", one, batch),
  manual("two devices, hand-written gradients", devices, batch),
];
const limit = 16 * batch;
const speeds = await race(configs, rounds, limit);
configs.forEach((c, i) => console.log(`  ${c.name}: ${speeds[i].toFixed(0)} samples/s`));
const hiddenSync = await hidden(configs[1], limit);
const hiddenStale = await hidden(configs[3], limit);
const [hostSpeed] = await race([autopar("host", [cpu()], batch, 0)], 1, 4 * batch);
console.log(`  host: ${hostSpeed.toFixed(0)} samples/s`);
const peer = await tfjs(3);
for (const c of configs) c.mlp.dispose();

const scaling = [];
for (const b of [64, 256, 1024, 2048]) {
  const cs = [
    autopar("one", one, b, 0),
    autopar("two", devices, b, 0),
    autopar("one stale", one, b, 1),
    autopar("two stale", devices, b, 1),
  ];
  const [o, t, os, ts] = await race(cs, 3, Math.max(8 * b, 2048));
  for (const c of cs) c.mlp.dispose();
  scaling.push({
    batch: b,
    synchronous: { oneDevice: o, twoDevices: t, twoOverOne: t / o },
    staleness1: { oneDevice: os, twoDevices: ts, twoOverOne: ts / os },
  });
  console.log(
    `  batch ${b}: two / one ${(t / o).toFixed(2)} synchronous, ${(ts / os).toFixed(2)} stale`,
  );
}

/** Test accuracy of two devices after `epochs` epochs of `deno task train`'s settings. */
async function accuracy(staleness: number) {
  const trainer = new Trainer(mlp({ seed: 1 }), devices, { lr, staleness });
  const speeds: number[] = [];
  for (let e = 1; e <= epochs; e++) {
    speeds.push((await trainEpoch(trainer, train, { batch: accBatch, seed: e })).samplesPerSecond);
  }
  const { accuracy } = await trainer.evaluate(test);
  trainer.dispose();
  console.log(
    `  ${epochs} epochs at batch ${accBatch}, staleness ${staleness}: test accuracy ` +
      `${(100 * accuracy).toFixed(2)}%, ${median(speeds).toFixed(0)} samples/s`,
  );
  return {
    devices: 2,
    epochs,
    batch: accBatch,
    lr,
    staleness,
    accuracy,
    samplesPerSecond: median(speeds),
  };
}
const accuracySync = await accuracy(0);
const accuracyStale = await accuracy(1);

const [oneSync, twoSync, oneStale, twoStale, oneNoTraffic, twoNoTraffic, oneManual, twoManual] =
  speeds;
const result = {
  date: new Date().toISOString(),
  adapter: devices[0].info.adapter,
  threadsPerDevice: devices[0].info.threads,
  cores: navigator.hardwareConcurrency,
  batch,
  lr,
  rounds,
  samplesPerSecond: {
    host: hostSpeed,
    oneDevice: oneSync,
    twoDevices: twoSync,
    oneDeviceStale: oneStale,
    twoDevicesStale: twoStale,
    oneDeviceNoTraffic: oneNoTraffic,
    twoDevicesNoTraffic: twoNoTraffic,
    oneDeviceHandWritten: oneManual,
    twoDevicesHandWritten: twoManual,
    tfjsWebgpu: peer.samplesPerSecond,
  },
  /** Autograd's samples/s over the hand-written trainer's, same devices, same run. */
  autogradOverHandWritten: { oneDevice: oneSync / oneManual, twoDevices: twoSync / twoManual },
  /** Two devices over one, same algorithm: synchronous SGD. */
  twoOverOne: twoSync / oneSync,
  /** Two devices over one, same algorithm: one-step-delayed SGD. */
  twoOverOneStale: twoStale / oneStale,
  /** The ceiling: two devices that never exchange gradients, over one device doing the same. */
  twoOverOneNoTraffic: twoNoTraffic / oneNoTraffic,
  twoOverTfjs: twoSync / peer.samplesPerSecond,
  twoStaleOverTfjs: twoStale / peer.samplesPerSecond,
  gradientTrafficHidden: { synchronous: hiddenSync, staleness1: hiddenStale },
  scaling,
  testAccuracy: { synchronous: accuracySync, staleness1: accuracyStale },
  tfjsTestAccuracyAfter3Epochs: peer.testAccuracy,
  goals: { twoOverOne: 1.7, twoOverTfjs: 1.5, testAccuracy: 0.95, autogradOverHandWritten: 0.9 },
};
console.log(
  `two devices / one: ${result.twoOverOne.toFixed(2)} synchronous, ` +
    `${result.twoOverOneStale.toFixed(2)} with staleness 1, ` +
    `${result.twoOverOneNoTraffic.toFixed(2)} without gradient traffic (goal 1.7); ` +
    `two devices / tfjs: ${result.twoOverTfjs.toFixed(2)} (goal 1.5); ` +
    `autograd / hand-written: ${result.autogradOverHandWritten.oneDevice.toFixed(2)} one device, ` +
    `${result.autogradOverHandWritten.twoDevices.toFixed(2)} two devices (goal >= 0.9); ` +
    `test accuracy: ${(100 * accuracySync.accuracy).toFixed(2)}% / ` +
    `${(100 * accuracyStale.accuracy).toFixed(2)}% (goal 95%)`,
);
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/mlp.json", import.meta.url),
  JSON.stringify(result, null, 2) + "\n",
);
Deno.exit(0);
