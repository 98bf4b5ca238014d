/**
 * One rank of the DistributedDataParallel test: trains the shared model on its share of a
 * fixed batch and prints its parameters as the last line (JSON). Run by the launcher.
 * Args: `--device cpu|gpu --steps N --optimizer sgd|adam [--die-at STEP] [--timeout-ms MS] [--local N]`.
 *
 * @module
 */
import {
  Adam,
  cpu,
  destroyProcessGroup,
  DistributedDataParallel,
  getRank,
  getWorldSize,
  initProcessGroup,
  SGD,
  synchronize,
  tryAllGpus,
  tryGpu,
} from "../../mod.ts";
import { ddpBatch, ddpModel } from "./ddp_data.ts";

const arg = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : fallback;
};
await initProcessGroup({ timeoutMs: Number(arg("timeout-ms", "30000")) });
const rank = getRank();
const world = getWorldSize();
const device = arg("device", "cpu") === "gpu" ? await tryGpu() : cpu();
// Every rank starts from its own initialisation: DDP must broadcast rank 0's.
const model = ddpModel(10 + rank).to(device);
// --local N: N devices in this process, reduced locally before the ranks average.
const local = Number(arg("local", "0"));
const devices = local === 0
  ? undefined
  : device === cpu()
  ? Array.from({ length: local }, () => cpu())
  : await tryAllGpus({ count: local });
const ddp = new DistributedDataParallel(model, { bucketBytes: 256, devices });
const opt = arg("optimizer", "sgd") === "adam"
  ? new Adam(ddp.parameters(), { lr: 0.01 })
  : new SGD(ddp.parameters(), { lr: 0.5, momentum: 0.9 });
const { x, y, rows } = ddpBatch();
const share = rows / world;
const xs = x.narrow(0, rank * share, share).to(device);
const ys = y.narrow(0, rank * share, share).to(device);
const dieAt = Number(arg("die-at", "-1"));
for (let step = 0; step < Number(arg("steps", "4")); step++) {
  // A rank that dies mid-training: the others must fail within the timeout, naming it.
  if (step === dieAt && rank === world - 1) Deno.exit(3);
  opt.zeroGrad();
  if (devices) ddp.forwardBackward(xs, ys, (out, labels) => out.crossEntropy(labels));
  else ddp.forward(xs).crossEntropy(ys).backward();
  opt.step();
}
await synchronize();
const params = await Promise.all(model.parameters().map(async (p) => [...await p.data()]));
await destroyProcessGroup();
console.log(JSON.stringify({ rank, params }));
