// `deno task train --optimizer ...`: the MLP trains with Adam (captured and fused by
// default) for one short epoch, and a bad optimizer name is refused before anything runs.
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

const train = (...args: string[]) =>
  new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/train.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(240_000),
  }).output();

Deno.test("examples/train.ts --optimizer adam trains one short captured epoch", async () => {
  const out = await train(
    "--devices",
    "1",
    "--optimizer",
    "adam",
    "--lr",
    "0.002",
    "--epochs",
    "1",
    "--limit",
    "512",
    "--batch",
    "64",
  );
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.match(text, /Adam, lr 0\.002; the step captured once and replayed/);
  // Epoch 1's row: epoch, loss, train acc, test acc, seconds, samples/s, ...
  const row = text.split("\n").find((l) => /^\s*1\s+\d/.test(l));
  assert.ok(row, `no epoch row:\n${text}`);
  const [, loss, , testAcc] = row.trim().split(/\s+/).map((x) => parseFloat(x));
  assert.ok(loss > 0 && loss < 2.3, `the loss fell below chance (ln 10): ${row}`);
  assert.ok(testAcc > 30, `the test accuracy (%) rose above chance: ${row}`);
});

Deno.test("examples/train.ts refuses an unknown optimizer", async () => {
  const out = await train("--optimizer", "lbfgs");
  assert.equal(out.code, 2);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /--optimizer must be sgd, momentum or adam, got "lbfgs"/,
  );
});
