/**
 * One rank of the distributed Trainer test: a Trainer with `distributed: true` steps on its
 * DistributedSampler share of each batch of a fixed data set and prints, as its last line
 * (JSON), its parameters and how many allReduce ops each step ran. Run by the launcher.
 * Args: `--device cpu|gpu --capture on|off --optimizer sgd|adam`.
 *
 * @module
 */
import {
  Adam,
  cpu,
  destroyProcessGroup,
  DistributedSampler,
  getRank,
  getWorldSize,
  initProcessGroup,
  mlp,
  SGD,
  synchronize,
  trace$,
  Trainer,
  tryGpu,
} from "../../mod.ts";
import { EPOCHS, GLOBAL_BATCH, trainerData } from "./trainer_data.ts";

const arg = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
await initProcessGroup({ timeoutMs: 30_000 });
const rank = getRank();
const world = getWorldSize();
const device = arg("device", "cpu") === "gpu" ? await tryGpu() : cpu();
const adam = arg("optimizer", "sgd") === "adam";
// Every rank starts from its own initialisation: the Trainer must broadcast rank 0's.
const trainer = new Trainer(mlp({ inputs: 5, hidden: 8, outputs: 3, seed: 10 + rank }), [device], {
  distributed: { bucketBytes: 64 },
  capture: arg("capture", "off") === "on",
  optimizer: (params) =>
    adam ? new Adam(params, { lr: 0.01 }) : new SGD(params, { lr: 0.5, momentum: 0.9 }),
});
const data = trainerData();
const sampler = new DistributedSampler(data.count, { seed: 3 });
const local = GLOBAL_BATCH / world;
const images = new Float32Array(local * 5);
const labels = new Float32Array(local);
const allReduces: number[] = [];
for (let epoch = 0; epoch < EPOCHS; epoch++) {
  const mine = sampler.indices(epoch);
  for (let from = 0; from < mine.length; from += local) {
    mine.slice(from, from + local).forEach((i, r) => {
      images.set(data.images.subarray(i * 5, (i + 1) * 5), r * 5);
      labels[r] = data.labels[i];
    });
    let ops = 0;
    const sub = trace$().subscribe((e) => {
      if (e.op === "allReduce") ops++;
    });
    trainer.step(images, labels, local);
    await synchronize();
    sub.unsubscribe();
    allReduces.push(ops);
  }
}
await synchronize();
const model = trainer.dp.replicas[0];
const params = await Promise.all(model.parameters().map(async (p) => [...await p.data()]));
await destroyProcessGroup();
console.log(JSON.stringify({ rank, params, allReduces, replays: trainer.replays }));
