// Random programs over two GPUs and the host, captured as a step: each replay (its device
// segments with their elementwise kernels fused, the copies and host ops between them)
// gives bitwise the values of the step run anew, and replaying keeps device memory flat.
import assert from "node:assert/strict";
import fc from "npm:fast-check@4.11.0";
import {
  capture,
  cpu,
  type Device,
  fromArray,
  synchronize,
  type Tensor,
  tryAllGpus,
} from "../../mod.ts";
import { engine } from "../../lib/engine/engine.ts";
import { build, describe, programSpecs, submitProgram } from "../../tools/random_graph.ts";

const gpus = await tryAllGpus({ count: 2 });
const devices: Device[] = [...gpus, cpu()];
const opts = { sanitizeOps: false, sanitizeResources: false };

/** Calls of a step, issued back to back (nothing waits between them), then all read. */
async function calls(step: () => Tensor[], n: number): Promise<Float32Array[][]> {
  const outs: Tensor[][] = [];
  for (let i = 0; i < n; i++) outs.push(step());
  const values = await Promise.all(outs.map((o) => Promise.all(o.map((t) => t.data()))));
  for (const o of outs) o.forEach((t) => t.dispose());
  return values;
}

Deno.test(
  "replays of random captured programs match the program run anew, bit for bit",
  opts,
  async () => {
    let segments = 0;
    let fused = 0;
    const specs = programSpecs({ deviceCount: devices.length, maxDim: 8, maxNodes: 16 });
    await fc.assert(
      fc.asyncProperty(specs, async (spec) => {
        const p = build(spec, devices.length, 16);
        /** A step of `p` whose results are scaled by `w`, which it then updates in place. */
        const stepOf = (w: Tensor) => () => {
          const { kept, made } = submitProgram(p, devices);
          const out = kept.map((t) => t.mul(w.to(t.device, { nonBlocking: true })));
          // What the step made and does not return is its own: dropped at its end.
          for (const t of made) t.dispose();
          w.sub_(w.mul(0.25));
          return out;
        };
        const w0 = () => fromArray([1], [1], { device: gpus[0] });
        const [wa, wc] = [w0(), w0()];
        const want = await calls(stepOf(wa), 6);
        const step = capture(stepOf(wc));
        const replay = () => step.replay() as Tensor[];
        // Two calls run and record it; four replays, back to back, read after all were issued.
        const got = await calls(replay, 6);
        await synchronize();
        const live = engine().liveBuffers().count;
        await calls(replay, 4);
        await synchronize();
        // Not more (other garbage may be collected meanwhile: perhaps fewer).
        const now = engine().liveBuffers().count;
        assert.ok(now <= live, `replays keep device memory flat: ${now} > ${live}`);
        segments += step.segments;
        fused += step.fused;
        step.dispose();
        wa.dispose();
        wc.dispose();
        got.forEach((values, i) =>
          values.forEach((v, k) =>
            assert.deepEqual(v, want[i][k], `call ${i}, result ${k} of\n${describe(p, devices)}`)
          )
        );
      }),
      { numRuns: 60, seed: 0xca97 },
    );
    assert.ok(segments > 60, `only ${segments} segments in 60 programs`);
    // Replays fuse elementwise kernels (by default) and still give the same bits.
    assert.ok(fused > 10, `only ${fused} fused kernels in 60 programs`);
  },
);
