/**
 * An in-order lane (an async host lane, the communication stream of a process group's
 * collectives) sends its ops in the order they were submitted, even when a later one is
 * ready first: every rank then runs its collectives in the same order, whichever of their
 * inputs lands first.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cpu, fromArray, synchronize, type Tensor } from "../../mod.ts";
import { AsyncHostRuntime } from "../../lib/devices/async_host.ts";
import { engine } from "../../lib/engine/engine.ts";
import { recordOf, wrap } from "../../lib/tensor/tensor.ts";

const ran: string[] = [];
const slow = AsyncHostRuntime.open("late_input", {
  late: async ([x]) => {
    await new Promise((r) => setTimeout(r, 40));
    return [x.slice()];
  },
});
const comm = AsyncHostRuntime.open("ordered_comm", {
  tag: ([x], params) => {
    ran.push(String(params.tag));
    return Promise.resolve([x.slice()]);
  },
});

function submit(lane: AsyncHostRuntime, kernel: string, t: Tensor, tag = ""): Tensor {
  const [out] = engine().submit({
    name: kernel,
    kind: "run",
    device: lane.device,
    kernel,
    params: { tag },
    inputs: [recordOf(t)],
    outputShapes: [t.shape],
    outputDevice: cpu(),
  });
  return wrap(out);
}

Deno.test("an async host lane runs a later ready op only after the earlier op that waited for its input", async () => {
  assert.equal(comm.inOrder, true);
  const late = submit(slow, "late", fromArray([1], [1]));
  const first = submit(comm, "tag", late, "first");
  const second = submit(comm, "tag", fromArray([2], [1]), "second");
  await synchronize();
  assert.deepEqual(ran, ["first", "second"]);
  assert.deepEqual([...await first.data(), ...await second.data()], [1, 2]);
});
