/**
 * The nevers of DESIGN.md's layers, as a test: the imports of every file of lib/ (as Deno's
 * own module graph sees them, `deno info --json`, so comments and doc examples do not count)
 * flow one way. Tensor imports no concrete device, the engine no kernel types, nothing climbs
 * back up a layer, and lib/ imports nothing outside lib/ (routes/, islands/, components/,
 * server/). The dashboard keeps Fresh's layers: server/app.ts (and serve.ts above it) mounts
 * routes/, which read the server's state and runs but never the app; the rest of server/
 * imports no route or island; islands/ import components/ only, and components/ nothing of
 * the dashboard's other folders.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const LIB = new URL("lib/", ROOT);

/**
 * The folders of lib/ each folder may import (besides itself), from DESIGN.md: nn/optim ->
 * autograd -> tensor -> engine -> devices -> kernels; streams and trace read the engine;
 * distributed, data, train and capture sit above tensor; experiments above everything.
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  kernels: [],
  devices: ["kernels"],
  engine: ["devices"],
  tensor: ["engine", "devices", "kernels"],
  autograd: ["tensor", "engine", "devices", "kernels"],
  nn: ["autograd", "tensor", "engine", "devices", "kernels"],
  optim: ["autograd", "tensor", "engine", "devices", "kernels"],
  streams: ["tensor", "engine", "devices"],
  trace: ["streams", "engine", "devices"],
  bench: ["trace", "engine", "devices"],
  capture: ["autograd", "tensor", "engine", "devices", "kernels"],
  io: ["nn", "autograd", "tensor", "engine", "devices"],
  distributed: ["nn", "optim", "autograd", "trace", "streams", "tensor", "engine", "devices"],
  data: ["distributed", "streams", "tensor", "engine", "devices"],
  train: [
    "capture",
    "data",
    "distributed",
    "nn",
    "optim",
    "autograd",
    "trace",
    "streams",
    "tensor",
    "engine",
    "devices",
  ],
  experiments: [
    "bench",
    "capture",
    "train",
    "data",
    "distributed",
    "io",
    "nn",
    "optim",
    "autograd",
    "trace",
    "streams",
    "tensor",
    "engine",
    "devices",
    "kernels",
  ],
};

/** One import: the importing file and the imported one, as paths from the repository root. */
interface Edge {
  from: string;
  to: string;
}

/** Every import between files of this repository made by a file of `dirs` (lib/ by default). */
async function libImports(dirs: readonly URL[] = [LIB]): Promise<Edge[]> {
  const files: string[] = [];
  const walk = (dir: URL) => {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isDirectory) walk(new URL(`${e.name}/`, dir));
      else if (/\.tsx?$/.test(e.name)) files.push(new URL(e.name, dir).href);
    }
  };
  for (const dir of dirs) walk(dir);
  const dir = await Deno.makeTempDir();
  try {
    const entry = `${dir}/all_of_lib.ts`;
    await Deno.writeTextFile(entry, files.map((f) => `import ${JSON.stringify(f)};\n`).join(""));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
      }[];
    };
    const root = ROOT.href;
    const edges: Edge[] = [];
    for (const m of graph.modules) {
      if (!dirs.some((d) => m.specifier.startsWith(d.href))) continue;
      for (const d of m.dependencies ?? []) {
        for (const to of [d.code?.specifier, d.type?.specifier]) {
          if (to?.startsWith(root)) {
            edges.push({ from: m.specifier.slice(root.length), to: to.slice(root.length) });
          }
        }
      }
    }
    return edges;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The folder of lib/ a path is in ("lib/engine/engine.ts" -> "engine"), or undefined. */
function layerOf(path: string): string | undefined {
  const m = /^lib\/([^/]+)\//.exec(path);
  return m?.[1];
}

/** The imports that break a never, each as a sentence. */
function violations(edges: readonly Edge[]): string[] {
  const out: string[] = [];
  for (const { from, to } of edges) {
    const a = layerOf(from);
    const b = layerOf(to);
    if (b === undefined) {
      out.push(`${from} imports ${to}: lib/ imports nothing outside lib/`);
      continue;
    }
    if (a === "tensor" && /^lib\/devices\/webgpu_/.test(to)) {
      out.push(`${from} imports ${to}: Tensor imports no concrete device`);
    }
    if (a === "engine" && b === "kernels") {
      out.push(`${from} imports ${to}: the engine imports no kernel types`);
    }
    if (a === undefined || a === b) continue;
    const allowed = MAY_IMPORT[a];
    if (!allowed) out.push(`${from} is in lib/${a}/, a folder with no place in the layers`);
    else if (!allowed.includes(b)) {
      out.push(`${from} imports ${to}: lib/${a}/ may not import lib/${b}/`);
    }
  }
  return out;
}

Deno.test("the layers form no cycle, so no import can climb back up", () => {
  const state = new Map<string, "visiting" | "done">();
  const visit = (layer: string, path: string[]): void => {
    if (state.get(layer) === "done") return;
    assert.notEqual(state.get(layer), "visiting", `cycle: ${[...path, layer].join(" -> ")}`);
    state.set(layer, "visiting");
    for (const next of MAY_IMPORT[layer] ?? []) visit(next, [...path, layer]);
    state.set(layer, "done");
  };
  for (const layer of Object.keys(MAY_IMPORT)) visit(layer, []);
  for (const [layer, below] of Object.entries(MAY_IMPORT)) {
    for (const b of below) assert.ok(b in MAY_IMPORT, `lib/${layer}/ names an unknown layer ${b}`);
  }
});

Deno.test("every folder of lib/ has a place in the layers", () => {
  for (const e of Deno.readDirSync(LIB)) {
    if (e.isDirectory) assert.ok(e.name in MAY_IMPORT, `lib/${e.name}/ has no place in MAY_IMPORT`);
  }
});

Deno.test("the check finds each kind of broken never", () => {
  const found = violations([
    { from: "lib/tensor/tensor.ts", to: "lib/devices/webgpu_device.ts" },
    { from: "lib/engine/records.ts", to: "lib/kernels/kernel.ts" },
    { from: "lib/engine/engine.ts", to: "lib/trace/event.ts" },
    { from: "lib/devices/device.ts", to: "lib/tensor/tensor.ts" },
    { from: "lib/trace/trace.ts", to: "server/app.ts" },
    { from: "lib/tensor/tensor.ts", to: "lib/engine/engine.ts" },
  ]);
  assert.deepEqual(found, [
    "lib/tensor/tensor.ts imports lib/devices/webgpu_device.ts: Tensor imports no concrete device",
    "lib/engine/records.ts imports lib/kernels/kernel.ts: the engine imports no kernel types",
    "lib/engine/records.ts imports lib/kernels/kernel.ts: lib/engine/ may not import lib/kernels/",
    "lib/engine/engine.ts imports lib/trace/event.ts: lib/engine/ may not import lib/trace/",
    "lib/devices/device.ts imports lib/tensor/tensor.ts: lib/devices/ may not import lib/tensor/",
    "lib/trace/trace.ts imports server/app.ts: lib/ imports nothing outside lib/",
  ]);
});

Deno.test("imports in lib/ keep the nevers: no concrete device in Tensor, no kernel types in the engine, nothing upward", async () => {
  const edges = await libImports();
  assert.ok(edges.length > 100, `the module graph was read (${edges.length} imports)`);
  assert.ok(
    edges.some((e) => e.from === "lib/tensor/core.ts" && e.to === "lib/engine/engine.ts"),
    "a known import is among them",
  );
  assert.deepEqual(violations(edges), []);
});

const DASHBOARD = ["routes/", "islands/", "components/", "server/"].map((d) => new URL(d, ROOT));
/** The dashboard's composition root: the files that mount routes/ (and what serves them). */
const APP = new Set(["server/app.ts", "server/serve.ts"]);

/** The imports of the dashboard's files that break its layers, each as a sentence. */
function dashboardViolations(edges: readonly Edge[]): string[] {
  const folder = (p: string) => /^(routes|islands|components|server)\//.exec(p)?.[1];
  const out: string[] = [];
  for (const { from, to } of edges) {
    const [a, b] = [folder(from), folder(to)];
    if (a === "routes" && APP.has(to)) out.push(`${from} imports ${to}: routes/ never the app`);
    if (a === "server" && !APP.has(from) && (b === "routes" || b === "islands")) {
      out.push(`${from} imports ${to}: only the app mounts routes/`);
    }
    if (a === "islands" && (b === "routes" || b === "server")) {
      out.push(`${from} imports ${to}: islands/ import components/ only`);
    }
    if (a === "components" && b !== undefined && b !== "components") {
      out.push(`${from} imports ${to}: components/ import nothing of the dashboard`);
    }
  }
  return out;
}

Deno.test("the dashboard's imports keep its layers: the app mounts routes/, which never import it", async () => {
  const edges = await libImports(DASHBOARD);
  assert.ok(
    edges.some((e) => e.from === "server/app.ts" && e.to === "routes/index.tsx"),
    "a known import is among them",
  );
  assert.deepEqual(dashboardViolations(edges), []);
  assert.deepEqual(
    dashboardViolations([
      { from: "routes/index.tsx", to: "server/app.ts" },
      { from: "server/state.ts", to: "routes/index.tsx" },
      { from: "components/format.ts", to: "islands/live.ts" },
    ]).length,
    3,
  );
});
