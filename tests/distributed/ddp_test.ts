/**
 * DistributedDataParallel through the launcher: 2 and 3 processes train on their shares of
 * a batch and end with the parameters of one process trained on the whole batch (within
 * 1e-5), on the host and on a GPU, with SGD (momentum) and Adam.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Adam, launch, type OutputLine, SGD, synchronize } from "../../mod.ts";
import { ddpBatch, ddpModel } from "./ddp_data.ts";

const WORKER = new URL("./ddp_worker.ts", import.meta.url).pathname;
const STEPS = 4;

/** One process, the whole batch, rank 0's initialisation. */
async function reference(optimizer: string): Promise<number[][]> {
  const model = ddpModel(10);
  const opt = optimizer === "adam"
    ? new Adam(model.parameters(), { lr: 0.01 })
    : new SGD(model.parameters(), { lr: 0.5, momentum: 0.9 });
  const { x, y } = ddpBatch();
  for (let step = 0; step < STEPS; step++) {
    opt.zeroGrad();
    model.forward(x).crossEntropy(y).backward();
    opt.step();
  }
  await synchronize();
  return await Promise.all(model.parameters().map(async (p) => [...await p.data()]));
}

const CASES: [number, string, string][] = [
  [2, "cpu", "sgd"],
  [3, "cpu", "adam"],
  [2, "gpu", "sgd"],
];

for (const [nproc, device, optimizer] of CASES) {
  Deno.test(
    `${nproc} processes on the ${
      device === "gpu" ? "GPU" : "host"
    } with ${optimizer} end where one process on the whole batch does`,
    async () => {
      const lines: OutputLine[] = [];
      await launch({
        script: WORKER,
        args: ["--device", device, "--steps", String(STEPS), "--optimizer", optimizer],
        nproc,
        timeoutMs: 120_000,
        handleSignals: false,
        onLine: (line) => lines.push(line),
      });
      const results = lines.filter((l) => l.stream === "stdout" && l.text.startsWith("{"))
        .map((l) => JSON.parse(l.text) as { rank: number; params: number[][] });
      assert.equal(results.length, nproc, lines.map((l) => l.text).join("\n"));
      const want = await reference(optimizer);
      for (const { rank, params } of results) {
        params.forEach((p, i) => {
          p.forEach((v, j) => {
            assert.ok(
              Math.abs(v - want[i][j]) <= 1e-5,
              `rank ${rank}, parameter ${i}[${j}]: ${v}, one process gave ${want[i][j]}`,
            );
          });
        });
      }
      // Every rank holds the same bits.
      for (const r of results.slice(1)) assert.deepEqual(r.params, results[0].params);
    },
  );
}
