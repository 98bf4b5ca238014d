/**
 * The Trainer across processes: 2 processes through the launcher, each a Trainer with
 * `distributed` stepping on its DistributedSampler share of each batch, uncaptured and
 * captured, end within 1e-5 of one process training on the whole batches, on the host and
 * on a GPU, with SGD (momentum) and Adam. A captured step replays its allReduce ops.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  Adam,
  cpu,
  DistributedSampler,
  launch,
  mlp,
  type OutputLine,
  SGD,
  synchronize,
  Trainer,
  tryGpu,
} from "../../mod.ts";
import { EPOCHS, GLOBAL_BATCH, trainerData } from "./trainer_data.ts";

const WORKER = new URL("./trainer_worker.ts", import.meta.url).pathname;

/** One process, the whole batches (the ranks' shares together), rank 0's initialisation. */
async function reference(device: string, optimizer: string): Promise<number[][]> {
  const trainer = new Trainer(
    mlp({ inputs: 5, hidden: 8, outputs: 3, seed: 10 }),
    [device === "gpu" ? await tryGpu() : cpu()],
    {
      optimizer: (params) =>
        optimizer === "adam"
          ? new Adam(params, { lr: 0.01 })
          : new SGD(params, { lr: 0.5, momentum: 0.9 }),
    },
  );
  const data = trainerData();
  const all = new DistributedSampler(data.count, { numReplicas: 1, rank: 0, seed: 3 });
  const images = new Float32Array(GLOBAL_BATCH * 5);
  const labels = new Float32Array(GLOBAL_BATCH);
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const order = all.indices(epoch);
    for (let from = 0; from < order.length; from += GLOBAL_BATCH) {
      order.slice(from, from + GLOBAL_BATCH).forEach((i, r) => {
        images.set(data.images.subarray(i * 5, (i + 1) * 5), r * 5);
        labels[r] = data.labels[i];
      });
      trainer.step(images, labels, GLOBAL_BATCH);
    }
  }
  await synchronize();
  const params = trainer.dp.replicas[0].parameters();
  const values = await Promise.all(params.map(async (p) => [...await p.data()]));
  trainer.dispose();
  return values;
}

/** [device, capture, optimizer]. */
const CASES: [string, string, string][] = [
  ["cpu", "off", "sgd"],
  ["cpu", "on", "adam"],
  ["gpu", "off", "adam"],
  ["gpu", "on", "sgd"],
];

for (const [device, captured, optimizer] of CASES) {
  const where = device === "gpu" ? "GPU" : "host";
  const how = captured === "on" ? "captured" : "uncaptured";
  Deno.test(
    `2 processes training a Trainer ${how} on the ${where} with ${optimizer} end where one process on the whole batches does`,
    async () => {
      const lines: OutputLine[] = [];
      await launch({
        script: WORKER,
        args: ["--device", device, "--capture", captured, "--optimizer", optimizer],
        nproc: 2,
        timeoutMs: 120_000,
        handleSignals: false,
        onLine: (line) => lines.push(line),
      });
      const results = lines.filter((l) => l.stream === "stdout" && l.text.startsWith("{"))
        .map((l) =>
          JSON.parse(l.text) as {
            rank: number;
            params: number[][];
            allReduces: number[];
            replays: number;
          }
        );
      assert.equal(results.length, 2, lines.map((l) => l.text).join("\n"));
      const want = await reference(device, optimizer);
      for (const { rank, params, allReduces, replays } of results) {
        // The first step runs as it is, the second is recorded, the others are replays.
        assert.equal(replays, captured === "on" ? EPOCHS * 2 - 2 : 0, `rank ${rank}`);
        params.forEach((p, i) => {
          p.forEach((v, j) => {
            assert.ok(
              Math.abs(v - want[i][j]) <= 1e-5,
              `rank ${rank}, parameter ${i}[${j}]: ${v}, one process gave ${want[i][j]}`,
            );
          });
        });
        // A bucket per parameter (bucketBytes 64): every step, replays included, all-reduces
        // each of them.
        assert.equal(allReduces.length, EPOCHS * 2);
        assert.deepEqual(allReduces, allReduces.map(() => 4), `rank ${rank}: ${allReduces}`);
      }
      assert.deepEqual(results[1].params, results[0].params, "every rank holds the same bits");
    },
  );
}
