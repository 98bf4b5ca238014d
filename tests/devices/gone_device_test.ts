/**
 * A device that is gone (closed by `closeDevices()`, its GPUDevice lost, its Worker dead)
 * fails what waits for it and refuses new work at once, saying why: nothing hangs.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  closeDevices,
  cpu,
  type Device,
  fromArray,
  synchronize,
  type Tensor,
  tryAllGpus,
} from "../../mod.ts";
import { registerRuntime, type Report } from "../../lib/devices/runtime.ts";
import type { Command } from "../../lib/devices/protocol.ts";

/** Rejects when `p` has not settled within `ms`: a hang fails the test instead of stalling it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hung for ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * A device whose runtime takes batches and never answers, like a Worker that died, until
 * `die()` reports it lost.
 */
class SilentRuntime {
  readonly device: Device = Object.freeze({
    name: "silent:0",
    kind: "webgpu" as const,
    index: 0,
    info: Object.freeze({
      backend: "dawn" as const,
      adapter: "a device that never answers",
      software: true,
      features: [],
      maxBufferSize: 2 ** 20,
      maxStorageBufferBindingSize: 2 ** 20,
    }),
  });
  onReport: (report: Report) => void = () => {};
  lost: string | undefined = undefined;
  batches: Command[][] = [];
  send(batch: Command[]): void {
    if (this.lost) {
      const message = this.lost;
      queueMicrotask(() => this.onReport({ type: "lost", message }));
    } else this.batches.push(batch);
  }
  setBusy(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
  die(message: string): void {
    this.lost = message;
    this.onReport({ type: "lost", message });
  }
}

Deno.test("ops waiting on a device whose Worker died fail, naming the reason", async () => {
  const runtime = new SilentRuntime();
  registerRuntime(runtime);
  const x = fromArray([1, 2, 3, 4], [2, 2], { device: runtime.device });
  const y = x.mm(x);
  const read = y.data();
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(runtime.batches.length > 0, "the ops were sent to the device");
  runtime.die("silent:0's Worker stopped (exit code 1)");
  await assert.rejects(within(read, 5000, "data()"), /Worker stopped \(exit code 1\)/);
  await assert.rejects(within(synchronize(runtime.device), 5000, "synchronize"), /exit code 1/);
  // New work on it is refused at once, before anything is queued.
  assert.throws(() => x.add(1), /Cannot add Tensor\[2, 2\] on silent:0: .*exit code 1/);
  assert.throws(() => fromArray([1], [1]).to(runtime.device), /exit code 1/);
});

Deno.test("after closeDevices(), reading, new ops, to() and synchronize() on its tensors fail at once", async () => {
  const [device] = await tryAllGpus({ count: 1 });
  if (!device) return; // no WebGPU here: nothing to close
  const x = fromArray([1, 2, 3, 4], [2, 2], { device });
  const y = x.mm(x);
  assert.deepEqual([...await y.data()], [7, 10, 15, 22]);
  const queued: Tensor = y.mm(x);
  await closeDevices();
  const closed = /gpu:0 was closed by closeDevices\(\)/;
  await assert.rejects(within(y.data(), 5000, "data()"), closed);
  await assert.rejects(within(queued.data(), 5000, "data() of work queued before"), closed);
  assert.throws(() => x.mm(x), closed);
  assert.throws(() => y.to(cpu()), closed);
  assert.throws(() => fromArray([1], [1]).to(device), closed);
  assert.throws(() => fromArray([1], [1], { device }), closed);
  await assert.rejects(within(synchronize(device), 5000, "synchronize(device)"), closed);
  await within(synchronize().catch(() => {}), 5000, "synchronize()");
  // tryAllGpus() gives working devices again.
  const [fresh] = await tryAllGpus({ count: 1 });
  assert.notEqual(fresh, device);
  assert.deepEqual([...await fromArray([1, 2], [2], { device: fresh }).mul(2).data()], [2, 4]);
  await synchronize();
});

Deno.test("stderr carries no Dawn limit warnings unless AUTOPAR_DEBUG asks", async () => {
  const code = `import { tryAllGpus, fromArray } from "./mod.ts";
const [d] = await tryAllGpus({ count: 2 });
if (d) await fromArray([1, 2], [2], { device: d }).add(1).data();
console.error("a real error line");`;
  const run = async (env: Record<string, string>) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      cwd: new URL("../../", import.meta.url),
      env,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stderr);
  };
  const quiet = await run({});
  assert.doesNotMatch(quiet, /artificially reduced/);
  assert.match(quiet, /a real error line/);
  const debug = await run({ AUTOPAR_DEBUG: "1", AUTOPAR_WEBGPU: "dawn" });
  assert.match(debug, /a real error line/);
});
