// `deno task train`: the book's two-layer MLP (784 -> 256 -> 10) on real MNIST digits,
// built from Linear and ReLU layers, differentiated by autograd, trained by SGD, data
// parallel over the devices (DataParallel: a replica per device, the gradients exchanged
// through the host in buckets while backward still runs).
//
//   deno task train [--devices cpu|1|2] [--epochs N] [--batch N] [--lr X] [--staleness K]
//                   [--capture on|off] [--optimizer sgd|momentum|adam] [--trace step.json]
//                   [--limit N] [--distributed]
//
// --distributed trains across the processes of a launch, one model per process
// (DistributedDataParallel over its --devices), each on its DistributedSampler share of the
// digits, --batch per process:
//
//   deno task launch --nproc 2 examples/train.ts --distributed --devices cpu
//
// Each rank prints its epochs (the launcher prefixes its lines); samples/s count every
// rank's samples; rank 0 prints the summary.
//
// --limit N trains on the first N digits only (short epochs).
//
// --capture on (the default without staleness) records the training step once and replays
// it after (capture() in mod.ts): each step then only resubmits its ops, each device's
// elementwise kernels fused.
//
// --optimizer: SGD (the default), SGD with momentum 0.9, or Adam (betas 0.9, 0.999); --lr is
// theirs (try --optimizer adam --lr 0.002).
//
// --staleness K applies each step's summed gradients K steps late, so their round trip
// through the host runs while the devices compute the next steps (K-step-delayed SGD).
//
// Per epoch: the training loss, training and test accuracy, seconds, samples per second,
// and how much of the gradient traffic ran while some device was computing.
import { parseArgs } from "node:util";
import {
  Adam,
  allReduce,
  cpu,
  destroyProcessGroup,
  type Device,
  DistributedSampler,
  exportChromeTrace,
  fromArray,
  getRank,
  getWorldSize,
  initProcessGroup,
  type Optimizer,
  SGD,
  synchronize,
  type Tensor,
  trace$,
  type TraceEvent,
  tryAllGpus,
} from "../mod.ts";
import { mlp, Trainer } from "../lib/train/trainer.ts";
import { loadMnist } from "../lib/train/mnist.ts";
import { trainEpoch } from "../lib/train/epoch.ts";
import { gradientTraffic } from "../lib/train/traffic.ts";

const usage = "deno task train [--devices cpu|1|2] [--epochs N] [--batch N] [--lr X] " +
  "[--staleness K] [--capture on|off] [--optimizer sgd|momentum|adam] [--trace step.json] " +
  "[--limit N] [--distributed]";
const { values } = parseArgs({
  args: Deno.args,
  options: {
    devices: { type: "string", default: "2" },
    epochs: { type: "string", default: "10" },
    batch: { type: "string", default: "64" },
    lr: { type: "string", default: "0.5" },
    staleness: { type: "string", default: "0" },
    capture: { type: "string" },
    optimizer: { type: "string", default: "sgd" },
    trace: { type: "string" },
    limit: { type: "string" },
    distributed: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(usage);
  Deno.exit(0);
}
function option(name: string, raw: string, integer: boolean): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    console.error(
      `--${name} must be a ${integer ? "whole " : ""}number > 0, got "${raw}"\n${usage}`,
    );
    Deno.exit(2);
  }
  return n;
}
const epochs = option("epochs", values.epochs, true);
const batch = option("batch", values.batch, true);
const lr = option("lr", values.lr, false);
const staleness = Number(values.staleness);
if (!/^[0-8]$/.test(values.staleness)) {
  console.error(
    `--staleness must be a whole number from 0 to 8, got "${values.staleness}"\n${usage}`,
  );
  Deno.exit(2);
}

if (values.capture !== undefined && !/^(on|off)$/.test(values.capture)) {
  console.error(`--capture must be on or off, got "${values.capture}"\n${usage}`);
  Deno.exit(2);
}
const captured = (values.capture ?? (staleness === 0 ? "on" : "off")) === "on";
if (captured && staleness > 0) {
  console.error(`--capture on needs --staleness 0: a replay cannot carry pending gradients`);
  Deno.exit(2);
}
const optimizers: Record<string, ((params: Tensor[]) => Optimizer) | undefined> = {
  sgd: undefined,
  momentum: (params) => new SGD(params, { lr, momentum: 0.9 }),
  adam: (params) => new Adam(params, { lr }),
};
if (!(values.optimizer in optimizers)) {
  console.error(`--optimizer must be sgd, momentum or adam, got "${values.optimizer}"\n${usage}`);
  Deno.exit(2);
}
const optimizerName = { sgd: "SGD", momentum: "SGD with momentum 0.9", adam: "Adam" }[
  values.optimizer as "sgd"
];
const limit = values.limit === undefined ? undefined : option("limit", values.limit, true);
const distributed = values.distributed;
if (distributed && staleness > 0) {
  console.error(`--distributed needs --staleness 0: the ranks average each step's gradients`);
  Deno.exit(2);
}
// RANK, WORLD_SIZE and the NATS server's address come from the launcher.
if (distributed) await initProcessGroup();
const rank = distributed ? getRank() : 0;
const world = distributed ? getWorldSize() : 1;
/** Rank 0 says what runs; every rank prints its epochs. */
const say = (line: string) => rank === 0 && console.log(line);

let devices: Device[];
if (values.devices === "cpu") devices = [cpu()];
else {
  const count = option("devices", values.devices, true);
  devices = await tryAllGpus({ count });
  if (devices.length < count) {
    console.error(`Found ${devices.length} WebGPU devices, not ${count}: use --devices cpu`);
    Deno.exit(1);
  }
}
const { train, test } = loadMnist();
const trainCount = Math.min(limit ?? train.count, train.count);
say(
  `MLP 784 -> 256 -> 10 on ${devices.map((d) => d.name).join(" + ")}` +
    (devices.length > 1 ? " (DataParallel: gradients averaged on the host)" : "") +
    (distributed ? ` in each of ${world} processes (DistributedDataParallel)` : "") +
    `; ${devices[0].info.adapter}${
      devices[0].info.threads ? `, ${devices[0].info.threads} thread(s) per device` : ""
    }`,
);
say(
  `MNIST: ${trainCount} training and ${test.count} test digits; batch ${batch}` +
    (distributed ? ` per process, each on its share of the digits` : "") +
    `, ${optimizerName}, lr ${lr}` +
    (staleness ? `; updates ${staleness} step(s) late (--staleness ${staleness})` : "") +
    (captured ? "; the step captured once and replayed (--capture off to run it anew)" : "") +
    "\n",
);

const trainer = new Trainer(mlp({ seed: 1 }), devices, {
  lr,
  staleness,
  capture: captured,
  distributed,
  optimizer: optimizers[values.optimizer],
});
await synchronize();
/** This rank's share of the first `count` digits (a DistributedSampler), when distributed. */
const shareOf = (count: number) =>
  distributed ? new DistributedSampler(count, { numReplicas: world, rank }) : undefined;
const sampler = shareOf(trainCount);

/** Samples of every rank over the slowest rank's seconds: one sum and one max all-reduce. */
async function overAllRanks(samples: number, seconds: number): Promise<number> {
  if (!distributed) return samples / seconds;
  const total = fromArray([samples], [1]);
  const slowest = fromArray([seconds], [1]);
  await Promise.all([allReduce(total, { op: "sum" }), allReduce(slowest, { op: "max" })]);
  const rate = (await total.data())[0] / (await slowest.data())[0];
  total.dispose();
  slowest.dispose();
  return rate;
}

if (values.trace) {
  // One training step (after a warm-up step that compiles the kernels), as a Chrome trace.
  const one = { batch, limit: batch * world, sampler: shareOf(batch * world) };
  await trainEpoch(trainer, train, { ...one, seed: 1000 });
  const events: TraceEvent[] = [];
  const sub = trace$().subscribe((e) => events.push(e));
  await trainEpoch(trainer, train, { ...one, seed: 1001 });
  sub.unsubscribe();
  await Deno.writeTextFile(values.trace, JSON.stringify(exportChromeTrace(events)));
  console.log(
    `Wrote the trace of one training step (${events.length} events) to ${values.trace}\n`,
  );
}

const header = ["epoch", "loss", "train acc", "test acc", "seconds", "samples/s", "grad hidden"];
console.log(header.map((h) => h.padStart(12)).join(""));
let best = 0;
let accuracy = 0;
for (let epoch = 1; epoch <= epochs; epoch++) {
  const events: TraceEvent[] = [];
  const sub = trace$().subscribe((e) => events.push(e));
  const r = await trainEpoch(trainer, train, { batch, seed: epoch, limit, sampler });
  sub.unsubscribe();
  const rate = await overAllRanks(sampler?.length ?? trainCount, r.seconds);
  best = Math.max(best, rate);
  ({ accuracy } = await trainer.evaluate(test));
  const traffic = gradientTraffic(events);
  const hidden = traffic.total > 0
    ? `${(100 * traffic.hiddenAnyDevice / traffic.total).toFixed(0)}%`
    : "-";
  const cells = [
    String(epoch),
    r.loss.toFixed(4),
    `${(100 * r.trainAccuracy).toFixed(2)}%`,
    `${(100 * accuracy).toFixed(2)}%`,
    r.seconds.toFixed(2),
    rate.toFixed(0),
    hidden,
  ];
  console.log(cells.map((c) => c.padStart(12)).join(""));
}
say(
  `\n${world} process(es) x ${devices.length} device(s): ${best.toFixed(0)} samples/s at best` +
    (distributed ? " over all ranks" : "") +
    `, test accuracy ${(100 * accuracy).toFixed(2)}% after ${epochs} epoch(s)`,
);
if (distributed) await destroyProcessGroup();
Deno.exit(0);
