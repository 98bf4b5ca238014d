/**
 * A fault inside a device Worker fails the op it belongs to, not the Worker: the device goes
 * on running what comes after.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fromArray, synchronize, tryAllGpus } from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";
import { recordOf, wrap } from "../../lib/tensor/tensor.ts";

const [gpu] = await tryAllGpus({ count: 1 });

Deno.test({
  name: "a kernel without WGSL sent to a GPU fails its op, naming it, and the device goes on",
  ignore: !gpu,
  fn: async () => {
    const x = fromArray([-1, 1], [2], { device: gpu });
    // assert_labels is a host-only check: its wgsl() throws.
    const [out] = engine().submit({
      name: "hostOnlyCheck",
      kind: "run",
      device: gpu,
      kernel: "assert_labels",
      params: { cols: 2, op: "a test" },
      inputs: [recordOf(x)],
      outputShapes: [[2]],
    });
    await assert.rejects(wrap(out).data(), /assert_labels runs on the host only/);
    await synchronize(gpu).catch(() => {});
    assert.deepEqual([...await x.add(1).data()], [0, 2], "the Worker still runs ops");
  },
});
