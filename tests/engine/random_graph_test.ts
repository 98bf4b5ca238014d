/**
 * Property test: random dependency graphs spread over the WebGPU devices and the host give
 * the same values in parallel mode and in serial mode (bit for bit), and both match a
 * float64 reference interpreter (tools/random_graph.ts), within a float32 error bound derived per node.
 *
 * AUTOPAR_GRAPH_RUNS raises the number of programs (default 50); AUTOPAR_GRAPH_SEED
 * replays another fast-check seed, AUTOPAR_GRAPH_PATH one failing graph of it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cpu, type Device, tryAllGpus } from "../../mod.ts";
import { checkRandomGraphs } from "../../tools/random_graph.ts";

const gpus = await tryAllGpus({ count: 2 });
const devices: Device[] = [...gpus, cpu()];

function envInt(name: string, fallback: number): number {
  const v = Deno.env.get(name);
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`Cannot use ${name}="${v}": it must be a whole number >= 0`);
  }
  return n;
}

Deno.test({
  name: "random graphs over the devices and the host give bitwise the same values in parallel " +
    "and serial mode, and match a float64 reference",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const runs = await checkRandomGraphs({
      devices,
      seed: envInt("AUTOPAR_GRAPH_SEED", 0x5eed),
      runs: envInt("AUTOPAR_GRAPH_RUNS", 50),
      path: Deno.env.get("AUTOPAR_GRAPH_PATH") || undefined,
      replay: (seed, path) =>
        `AUTOPAR_GRAPH_SEED=${seed} AUTOPAR_GRAPH_PATH=${path} ` +
        "deno test -A tests/engine/random_graph_test.ts",
    });
    assert.ok(runs > 0);
  },
});
