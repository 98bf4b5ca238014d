/**
 * Async host lanes (lib/devices/async_host.ts): their ops are ordered with every other op,
 * their results are host tensors, and a failure that keeps its outputs leaves the values as
 * they were while the error surfaces at the next synchronisation.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  cpu,
  type Device,
  fromArray,
  noGrad,
  synchronize,
  type Tensor,
  tryAllGpus,
} from "../../mod.ts";
import { AsyncHostRuntime, KeptFailure } from "../../lib/devices/async_host.ts";
import { engine } from "../../lib/engine/engine.ts";
import { recordOf, wrap } from "../../lib/tensor/tensor.ts";

const order: string[] = [];
const lane = AsyncHostRuntime.open("slow", {
  // Doubles, late: a stand-in for a collective over the network.
  double: async ([x], params) => {
    order.push(`double ${params.tag}`);
    await new Promise((r) => setTimeout(r, 30));
    return [x.map((v) => 2 * v)];
  },
  refuse: ([x]) => Promise.reject(new KeptFailure("rank 1 never answered", [x.slice()])),
  broken: () => Promise.reject(new Error("no such thing")),
});

/** `t` (on the host) through the lane's `kernel`: a host tensor, queued at once. */
function onLane(t: Tensor, kernel: string, tag = ""): Tensor {
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

const devices: Device[] = [cpu(), ...(await tryAllGpus({ count: 1 }))];

for (const device of devices) {
  Deno.test(`an async host op's result, copied in place, is what later ops on ${device.name} read`, async () => {
    const t = fromArray([1, 2, 3], [3], { device });
    const doubled = onLane(t.to(cpu()), "double", device.name);
    noGrad(() => t.copy_(doubled));
    const after = t.add(1); // queued before the lane has answered: it must wait for it
    assert.deepEqual([...await after.data()], [3, 5, 7]);
    assert.ok(order.includes(`double ${device.name}`));
  });

  Deno.test(`a failure that keeps its outputs leaves ${device.name}'s tensor as it was and surfaces at synchronize()`, async () => {
    const t = fromArray([1, 2, 3], [3], { device });
    const refused = onLane(t.to(cpu()), "refuse");
    noGrad(() => t.copy_(refused));
    assert.deepEqual([...await t.data()], [1, 2, 3]);
    await assert.rejects(synchronize(), /refuse .* failed: rank 1 never answered/);
  });
}

Deno.test("an async host op that fails fails what reads it, naming the op", async () => {
  const out = onLane(fromArray([1], [1]), "broken");
  await assert.rejects(out.add(1).data(), /broken .* failed: no such thing/);
  await synchronize().catch(() => {});
});
