/**
 * `deno task launch --nproc 2 examples/train.ts --distributed`: one short epoch, each rank
 * printing its epoch (prefixed by the launcher), rank 0 the summary over all ranks.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("examples/train.ts --distributed trains one short epoch under the launcher with 2 processes", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "tools/launch.ts",
      "--nproc",
      "2",
      "examples/train.ts",
      "--distributed",
      "--devices",
      "cpu",
      "--epochs",
      "1",
      "--limit",
      "256",
      "--batch",
      "32",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  const lines = text.split("\n");
  // Each rank's row of epoch 1: epoch, loss, train acc, test acc, seconds, samples/s, hidden.
  const rows = [0, 1].map((rank) => {
    const row = lines.find((l) => new RegExp(`^\\[rank ${rank}\\]\\s+1\\s+\\d`).test(l));
    assert.ok(row, `rank ${rank} printed no epoch:\n${text}`);
    return row.replace(/^\[rank \d\]/, "").trim().split(/\s+/);
  });
  for (const row of rows) {
    assert.ok(Number(row[1]) > 0 && Number(row[1]) < 3, `a loss: ${row}`);
    assert.ok(Number(row[5]) > 0, `samples/s: ${row}`);
  }
  // One model on every rank: the same test accuracy; samples/s is every rank's samples.
  assert.equal(rows[0][3], rows[1][3]);
  assert.equal(rows[0][5], rows[1][5]);
  const summaries = lines.filter((l) => l.includes("samples/s at best over all ranks"));
  assert.equal(summaries.length, 1, text);
  assert.match(summaries[0], /^\[rank 0\] 2 process\(es\) x 1 device\(s\): \d+ samples\/s/);
  assert.match(text, /MNIST: 256 training .* batch 32 per process/);
});
