/**
 * DistributedDataParallel through the launcher: 2 and 3 processes train on their shares of
 * a batch and end with the parameters of one process trained on the whole batch (within
 * 1e-5), on the host and on a GPU, with SGD (momentum) and Adam.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Adam, launch, type OutputLine, SGD, startNatsServer, synchronize } from "../../mod.ts";
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

/** [processes, device, optimizer, local devices per process (0: the model's one)]. */
const CASES: [number, string, string, number][] = [
  [2, "cpu", "sgd", 0],
  [3, "cpu", "adam", 0],
  [2, "gpu", "sgd", 0],
  [2, "cpu", "sgd", 2],
  [2, "gpu", "adam", 2],
];

for (const [nproc, device, optimizer, local] of CASES) {
  const where = `${device === "gpu" ? "GPU" : "host"}${local ? ` x ${local} devices each` : ""}`;
  Deno.test(
    `${nproc} processes on the ${where} with ${optimizer} end where one process on the whole batch does`,
    async () => {
      const lines: OutputLine[] = [];
      const args = ["--device", device, "--steps", String(STEPS), "--optimizer", optimizer];
      await launch({
        script: WORKER,
        args: [...args, "--local", String(local)],
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

Deno.test("under the launcher, a rank that dies mid-training stops the job, naming it", async () => {
  const started = performance.now();
  const failure = await launch({
    script: WORKER,
    args: ["--steps", "6", "--die-at", "2", "--timeout-ms", "5000"],
    nproc: 3,
    timeoutMs: 60_000,
    handleSignals: false,
    onLine: () => {},
  }).then(() => undefined, (e: Error) => e);
  assert.match(String(failure), /rank 2 exited with code 3/);
  assert.ok(performance.now() - started < 50_000, "it ended well within the job's bound");
});

Deno.test("without a launcher to stop them, the ranks left fail within their timeout, naming the dead one", async () => {
  await using server = await startNatsServer();
  const job = `ddp-dies-${crypto.randomUUID()}`;
  const started = performance.now();
  const runs = await Promise.all([0, 1, 2].map(async (rank) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", WORKER, "--steps", "6", "--die-at", "2", "--timeout-ms", "4000"],
      env: {
        RANK: String(rank),
        WORLD_SIZE: "3",
        LOCAL_RANK: String(rank),
        AUTOPAR_NATS_URL: server.url,
        AUTOPAR_JOB: job,
        LP_NUM_THREADS: "1",
      },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    return { rank, code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  }));
  assert.equal(runs[2].code, 3);
  for (const r of runs.slice(0, 2)) {
    assert.notEqual(r.code, 0, `rank ${r.rank} went on as if nothing happened`);
    assert.match(r.stderr, /rank 2/, `rank ${r.rank}: ${r.stderr}`);
  }
  assert.ok(performance.now() - started < 50_000, "the ranks left ended within their bound");
});
