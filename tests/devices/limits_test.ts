/**
 * Devices ask for the adapter's own buffer limits (WebGPU's defaults are 128 MiB bindings
 * and 256 MiB buffers), so a tensor as large as the adapter allows works, and one past it is
 * a clear RangeError before anything is queued.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ones, synchronize, tryAllGpus, zeros } from "../../mod.ts";

const [device] = await tryAllGpus({ count: 1 });

Deno.test({
  name: "a tensor as large as the adapter's largest binding (up to 256 MiB here) is computed right",
  ignore: !device,
  fn: async () => {
    const limit = device.info.maxStorageBufferBindingSize;
    // Past WebGPU's default of 128 MiB where the adapter allows it, kept within 256 MiB.
    const elements = Math.floor(Math.min(limit, 2 ** 28) / 4);
    const x = ones([elements], { device });
    const total = await x.sum().data();
    assert.equal(total[0], elements);
    const tail = await x.add(1).narrow(0, elements - 3, 3).data();
    assert.deepEqual([...tail], [2, 2, 2]);
    x.dispose();
    await synchronize(device);
  },
});

Deno.test({
  name: "a tensor past the adapter's largest binding is a RangeError naming both sizes",
  ignore: !device,
  fn: () => {
    const limit = device.info.maxStorageBufferBindingSize;
    const elements = Math.floor(limit / 4) + 1;
    assert.throws(
      () => zeros([elements], { device }),
      (e) =>
        e instanceof RangeError &&
        e.message.includes(
          `its ${elements * 4} bytes exceed the device's largest binding, ${limit}`,
        ),
    );
  },
});
