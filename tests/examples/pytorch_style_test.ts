/**
 * The PyTorch-style script (examples/pytorch_style.ts) runs as a user would run it: it
 * trains, evaluates, saves and loads back the same weights.
 *
 * @module
 */
import assert from "node:assert/strict";

Deno.test("the PyTorch-style script trains MNIST past 80% in one epoch and loads back what it saved", async () => {
  const out = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "examples/pytorch_style.ts", "--epochs", "1", "--out", out],
      cwd: new URL("../../", import.meta.url),
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(300_000),
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, stderr + stdout);
    const accuracy = Number(/test accuracy ([\d.]+)/.exec(stdout)?.[1]);
    assert.ok(accuracy > 0.8, `test accuracy ${accuracy}:\n${stdout}`);
    assert.match(stdout, /loaded back 4 tensors, identical: true/);
    assert.ok((await Deno.stat(out)).size > 4 * (784 * 256 + 256 + 2560 + 10));
    assert.equal(stderr.trim(), "", "stderr stays clean");
  } finally {
    await Deno.remove(out).catch(() => {});
  }
});
