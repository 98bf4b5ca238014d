/**
 * The random-graph property with many small graphs (the engine's random_graph_test runs
 * fewer, bigger ones), and the replay of a failure from its printed seed.
 *
 * AUTOPAR_GRAPH_SEED and AUTOPAR_GRAPH_PATH replay a failing graph.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cpu, type Device, tryAllGpus } from "../../mod.ts";
import {
  checkRandomGraphs,
  type Program,
  RandomGraphError,
  reference,
} from "../../tools/random_graph.ts";

const gpus = await tryAllGpus({ count: 2 });
const devices: Device[] = [...gpus, cpu()];
const small = { devices, maxDim: 8, maxNodes: 10 };
const replay = (seed: number, path: string) =>
  `AUTOPAR_GRAPH_SEED=${seed} AUTOPAR_GRAPH_PATH=${path} deno test -A ` +
  "tests/experiments/random_graphs_test.ts";

Deno.test({
  name: "200 small random graphs give bitwise the same values in parallel and serial mode, " +
    "and match the float64 reference",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const seed = Number(Deno.env.get("AUTOPAR_GRAPH_SEED") || 0x5a11);
    const path = Deno.env.get("AUTOPAR_GRAPH_PATH") || undefined;
    const runs = await checkRandomGraphs({ ...small, seed, runs: 200, path, replay });
    assert.equal(runs, path === undefined ? 200 : 1);
  },
});

/** A reference that is wrong wherever a product is read: the check must catch it. */
function brokenReference(p: Program): Float64Array[] {
  const values = reference(p);
  const kept = p.nodes.flatMap((n, i) => (n.disposeAfterLastUse ? [] : [i]));
  return values.map((v, k) => p.nodes[kept[k]]?.op === "mm" ? v.map((x) => x + 1) : v);
}

Deno.test({
  name: "a failing random graph prints its seed, and rerunning with that seed and path " +
    "replays the same graph",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const printed: string[] = [];
    const first = await checkRandomGraphs({
      ...small,
      seed: 1234,
      runs: 200,
      reference: brokenReference,
      print: (line) => printed.push(line),
      replay,
    }).then(() => undefined, (e) => e);
    assert.ok(first instanceof RandomGraphError, `the broken reference is caught: ${first}`);
    assert.match(printed.join("\n"), /seed 1234, path "[\d:]+"/);
    assert.match(first.message, /AUTOPAR_GRAPH_SEED=1234 AUTOPAR_GRAPH_PATH=[\d:]+/);

    // The printed seed and path, parsed back as a user would copy them.
    const [, seed, path] = printed[0].match(/seed (\d+), path "([\d:]+)"/)!;
    const again = await checkRandomGraphs({
      ...small,
      seed: Number(seed),
      path,
      runs: 200,
      reference: brokenReference,
      print: null,
      replay,
    }).then(() => undefined, (e) => e);
    assert.ok(again instanceof RandomGraphError, "the replay fails too");
    assert.deepEqual(again.spec, first.spec, "the replay runs the same graph");
    assert.equal(again.path, first.path);
  },
});
