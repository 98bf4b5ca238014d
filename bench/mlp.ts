// Benchmark of the book's MLP (784 -> 256 -> 10) on real MNIST digits: samples per second
// on the host only, on one device, on two devices (data parallel, the host summing the
// gradients), and the same MLP trained with tfjs-backend-webgpu, all in this process on the
// same adapter; and the test accuracy after 10 epochs on two devices.
// Writes bench/results/mlp.json.
//
// Throughput is measured at --batch (3 epochs each; the host 1), the two-device speed-up also
// at larger batches, and the accuracy with the settings of `deno task train` (--acc-batch,
// --acc-lr) over --epochs epochs.
//
//   deno run -A bench/mlp.ts [--epochs N] [--batch N] [--lr X] [--acc-batch N] [--acc-lr X]
import { parseArgs } from "node:util";
import * as tf from "npm:@tensorflow/tfjs-core@4.22.0";
import "npm:@tensorflow/tfjs-backend-webgpu@4.22.0";
import { cpu, type Device, synchronize, trace$, type TraceEvent, tryAllGpus } from "../mod.ts";
import { DataParallelMlp } from "../lib/train/mlp.ts";
import { type Dataset, loadMnist, mulberry32, shuffle } from "../lib/train/mnist.ts";
import { trainEpoch } from "../lib/train/epoch.ts";
import { gradientTraffic } from "../lib/train/traffic.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    epochs: { type: "string", default: "10" },
    batch: { type: "string", default: "256" },
    lr: { type: "string", default: "0.5" },
    "acc-batch": { type: "string", default: "64" },
    "acc-lr": { type: "string", default: "0.5" },
  },
});
const epochs = Number(values.epochs);
const batch = Number(values.batch);
const lr = Number(values.lr);
const accBatch = Number(values["acc-batch"]);
const accLr = Number(values["acc-lr"]);
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

interface Run {
  samplesPerSecond: number;
  epochs: { loss: number; trainAccuracy?: number; seconds: number; samplesPerSecond: number }[];
  testAccuracy: number;
  gradientHidden?: number;
}

/** Trains a fresh MLP on `on` for `n` epochs after a one-batch warm-up (compiles kernels). */
async function autopar(on: Device[], n: number, batch: number, lr: number): Promise<Run> {
  const mlp = new DataParallelMlp(on, { lr, seed: 1 });
  await trainEpoch(new DataParallelMlp(on, { lr, seed: 2 }), train, { batch, limit: batch });
  const runs: Run["epochs"] = [];
  const hidden: number[] = [];
  for (let epoch = 1; epoch <= n; epoch++) {
    const events: TraceEvent[] = [];
    const sub = trace$().subscribe((e) => events.push(e));
    const r = await trainEpoch(mlp, train, { batch, seed: epoch });
    sub.unsubscribe();
    const traffic = gradientTraffic(events);
    if (traffic.total > 0) hidden.push(traffic.hiddenAnyDevice / traffic.total);
    runs.push(r);
    console.log(
      `  ${on.map((d) => d.name).join("+")} epoch ${epoch}: loss ${r.loss.toFixed(4)}, ` +
        `${r.samplesPerSecond.toFixed(0)} samples/s (batch ${batch})`,
    );
  }
  const { accuracy } = await mlp.evaluate(test);
  await synchronize();
  return {
    samplesPerSecond: median(runs.map((r) => r.samplesPerSecond)),
    epochs: runs,
    testAccuracy: accuracy,
    gradientHidden: hidden.length > 0 ? median(hidden) : undefined,
  };
}

/** The same MLP, initialisation scheme, batches and SGD in tfjs-core on its WebGPU backend. */
async function tfjs(n: number): Promise<Run> {
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
  // The gradients are written out with tfjs ops, as autopar's are: tfjs-core's autograd
  // needs its gradient registry, whose ES modules Deno cannot load (extensionless imports).
  const forward = (x: tf.Tensor) =>
    tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2);
  const step = (x: tf.Tensor2D, y: tf.Tensor2D): tf.Scalar => {
    const rows = x.shape[0];
    const z1 = tf.add(tf.matMul(x, w1), b1);
    const h = tf.relu(z1);
    const logits = tf.add(tf.matMul(h, w2), b2);
    const loss = tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(logits)))) as tf.Scalar;
    const dz2 = tf.div(tf.sub(tf.softmax(logits), y), rows);
    const dw2 = tf.matMul(h, dz2, true, false);
    const db2 = tf.sum(dz2, 0);
    const dz1 = tf.mul(tf.matMul(dz2, w2, false, true), tf.step(z1));
    const dw1 = tf.matMul(x, dz1, true, false);
    const db1 = tf.sum(dz1, 0);
    for (const [v, g] of [[w2, dw2], [b2, db2], [w1, dw1], [b1, db1]] as const) {
      v.assign(tf.sub(v, tf.mul(g, lr)));
    }
    return loss;
  };
  const epoch = async (data: Dataset, seed: number, limit = data.count) => {
    const order = shuffle(Array.from({ length: limit }, (_, i) => i), mulberry32(seed));
    let total: tf.Tensor = tf.scalar(0); // a running sum: tfjs-webgpu's addN of many tensors is wrong
    const start = performance.now();
    for (let from = 0; from < limit; from += batch) {
      const rows = order.slice(from, from + batch);
      const images = new Float32Array(rows.length * 784);
      rows.forEach((i, r) => images.set(data.images.subarray(i * 784, (i + 1) * 784), r * 784));
      const labels = Int32Array.from(rows, (i) => data.labels[i]);
      const loss = tf.tidy(() => {
        const x = tf.tensor2d(images, [rows.length, 784]);
        const y = tf.oneHot(tf.tensor1d(labels, "int32"), 10) as tf.Tensor2D;
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
  const runs: Run["epochs"] = [];
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
    epochs: runs,
    testAccuracy: correct / test.count,
  };
}

console.log(
  `MLP 784 -> 256 -> 10 on MNIST (${train.count} train, ${test.count} test), batch ${batch}, ` +
    `lr ${lr}; ${devices[0].info.adapter}, ${devices[0].info.threads ?? "?"} thread(s) per device`,
);
const two = await autopar(devices, 3, batch, lr);
const one = await autopar([devices[0]], 3, batch, lr);
const host = await autopar([cpu()], 1, batch, lr);
const peer = await tfjs(3);
const scaling = [{ batch, oneDevice: one.samplesPerSecond, twoDevices: two.samplesPerSecond }];
for (const b of [1024, 2048]) {
  const [o, t] = [await autopar([devices[0]], 2, b, lr), await autopar(devices, 2, b, lr)];
  scaling.push({ batch: b, oneDevice: o.samplesPerSecond, twoDevices: t.samplesPerSecond });
}
const accuracy = await autopar(devices, epochs, accBatch, accLr);

const result = {
  date: new Date().toISOString(),
  adapter: devices[0].info.adapter,
  threadsPerDevice: devices[0].info.threads,
  cores: navigator.hardwareConcurrency,
  batch,
  lr,
  samplesPerSecond: {
    host: host.samplesPerSecond,
    oneDevice: one.samplesPerSecond,
    twoDevices: two.samplesPerSecond,
    tfjsWebgpu: peer.samplesPerSecond,
  },
  twoOverOne: two.samplesPerSecond / one.samplesPerSecond,
  twoOverTfjs: two.samplesPerSecond / peer.samplesPerSecond,
  gradientTrafficHidden: two.gradientHidden,
  /** Samples per second of one and two devices by batch size: the round trip is per step. */
  scaling: scaling.map((r) => ({ ...r, twoOverOne: r.twoDevices / r.oneDevice })),
  /** Two devices, `deno task train`'s settings. */
  testAccuracy: {
    devices: 2,
    epochs,
    batch: accBatch,
    lr: accLr,
    accuracy: accuracy.testAccuracy,
    samplesPerSecond: accuracy.samplesPerSecond,
    gradientTrafficHidden: accuracy.gradientHidden,
  },
  /** After the 3 throughput epochs (1 on the host), at `batch`. */
  testAccuracyShort: {
    twoDevices: two.testAccuracy,
    oneDevice: one.testAccuracy,
    host: host.testAccuracy,
    tfjsWebgpu: peer.testAccuracy,
  },
  goals: { twoOverOne: 1.7, twoOverTfjs: 1.5, testAccuracy: 0.95 },
  runs: {
    twoDevices: two.epochs,
    oneDevice: one.epochs,
    host: host.epochs,
    tfjsWebgpu: peer.epochs,
  },
};
console.table({
  "samples/s": result.samplesPerSecond,
});
console.log(
  `two devices / one: ${result.twoOverOne.toFixed(2)} (goal 1.7); two devices / tfjs: ` +
    `${result.twoOverTfjs.toFixed(2)} (goal 1.5); test accuracy after ${epochs} epochs: ` +
    `${(100 * accuracy.testAccuracy).toFixed(2)}% (goal 95%); gradient traffic hidden: ` +
    `${two.gradientHidden === undefined ? "-" : (100 * two.gradientHidden).toFixed(0) + "%"}`,
);
console.log(
  "two devices / one by batch: " +
    result.scaling.map((r) => `${r.batch}: ${r.twoOverOne.toFixed(2)}`).join(", "),
);
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/mlp.json", import.meta.url),
  JSON.stringify(result, null, 2) + "\n",
);
Deno.exit(0);
