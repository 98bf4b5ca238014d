/**
 * `narrow` and its gradient, `unnarrow`, on the host and on a GPU (the GPU kernel of
 * `unnarrow` once named a variable `from`, a WGSL keyword, and never compiled).
 *
 * @module
 */
import assert from "node:assert/strict";
import { cpu, type Device, fromArray, tryAllGpus } from "../../mod.ts";

const devices: Device[] = [cpu(), ...(await tryAllGpus({ count: 1 }))];

for (const device of devices) {
  Deno.test(`unnarrow places a block in zeros on ${device.name}`, async () => {
    const t = fromArray([1, 2, 3, 4], [2, 2], { device });
    assert.deepEqual([...await t.unnarrow(0, 1, 4).data()], [0, 0, 1, 2, 3, 4, 0, 0]);
    assert.deepEqual([...await t.unnarrow(1, 2, 5).data()], [0, 0, 1, 2, 0, 0, 0, 3, 4, 0]);
  });

  Deno.test(`narrow's gradient lands on the rows it took on ${device.name}`, async () => {
    const x = fromArray([1, 2, 3, 4, 5, 6], [3, 2], { device, requiresGrad: true });
    x.narrow(0, 1, 2).mul(fromArray([10, 20, 30, 40], [2, 2], { device })).sum().backward();
    assert.deepEqual([...await x.grad!.data()], [0, 0, 10, 20, 30, 40]);
  });
}
