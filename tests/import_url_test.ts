/**
 * Code that imports `mod.ts` by URL sees no import map: these tests serve the repository over
 * HTTP and import it from a script outside it, and check that `mod.ts` and `lib/` name npm
 * packages only by full `npm:name@version` specifiers.
 *
 * @module
 */
import assert from "node:assert/strict";

const repoRoot = new URL("../", import.meta.url);

const contentTypes: Record<string, string> = {
  ts: "application/typescript; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  json: "application/json; charset=utf-8",
};

/** Serves files under `root` read-only; 404 for anything else, including `..` paths. */
async function serveStatic(root: URL, request: Request): Promise<Response> {
  const path = decodeURIComponent(new URL(request.url).pathname);
  if (request.method !== "GET" || path.split("/").includes("..")) {
    return new Response("not found", { status: 404 });
  }
  try {
    const body = await Deno.readFile(new URL(`.${path}`, root));
    const ext = path.slice(path.lastIndexOf(".") + 1);
    const type = contentTypes[ext] ?? "application/octet-stream";
    return new Response(body, { headers: { "content-type": type } });
  } catch {
    return new Response("not found", { status: 404 });
  }
}

const script = (base: string) => `
import { cpu, fromArray, rand, synchronize, tryAllGpus } from "${base}mod.ts";

const devices = await tryAllGpus();
const host = await fromArray([1, 2, 3, 4], [2, 2], { device: cpu() }).mm(
  fromArray([5, 6, 7, 8], [2, 2], { device: cpu() }),
).data();
const noise = rand([4, 4], { device: cpu(), seed: 1 });
const noiseData = await noise.data();
let gpu = null;
if (devices.length > 0) {
  const x = fromArray([1, 2, 3, 4], [2, 2], { device: devices[0] });
  const y = x.mm(fromArray([5, 6, 7, 8], [2, 2], { device: devices[0] }));
  await synchronize(devices[0]);
  gpu = { name: devices[0].name, kind: devices[0].kind, product: [...(await y.data())] };
}
// Asked only now: the first adapter request must come after tryAllGpus() set LP_NUM_THREADS.
const adapterFound = (await navigator.gpu?.requestAdapter()) != null;
console.log(JSON.stringify({
  adapterFound,
  devices: devices.map((d) => d.name),
  host: [...host],
  noiseShape: noise.shape,
  noiseInRange: noiseData.every((v) => v >= 0 && v < 1),
  gpu,
}));
`;

Deno.test({
  name: "mod.ts imported by URL, with no config or import map, computes on cpu() and a GPU",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => serveStatic(repoRoot, request),
    );
    const tmp = await Deno.makeTempDir({ prefix: "autopar_import_url_" });
    try {
      const base = `http://127.0.0.1:${server.addr.port}/`;
      const file = `${tmp}/main.ts`;
      await Deno.writeTextFile(file, script(base));
      // --no-config: no deno.json, so no import map, even if one is found above tmp.
      // -A includes --allow-import, which remote modules need beyond the default hosts.
      // npm: specifiers in the remote modules resolve from Deno's global npm cache.
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-config", "--no-lock", "--quiet", file],
        cwd: tmp,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(stdout);
      const err = new TextDecoder().decode(stderr);
      assert.equal(code, 0, `the script importing ${base}mod.ts failed:\n${err}${out}`);
      const result = JSON.parse(out.trim().split("\n").at(-1)!);
      assert.deepEqual(result.host, [19, 22, 43, 50]);
      assert.deepEqual(result.noiseShape, [4, 4]);
      assert.equal(result.noiseInRange, true);
      if (result.adapterFound) {
        assert.ok(result.devices.length >= 1, `no devices over URL: ${out}${err}`);
        assert.deepEqual(result.gpu, { name: "gpu:0", kind: "webgpu", product: [19, 22, 43, 50] });
      } else {
        assert.deepEqual(result.devices, []);
        assert.equal(result.gpu, null);
      }
    } finally {
      await server.shutdown();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

/** Where a module specifier may point in code that is imported by URL. */
function specifierProblem(specifier: string): string | undefined {
  if (/^\.{0,2}\//.test(specifier) || specifier.startsWith("node:")) return undefined;
  if (/^https?:\/\//.test(specifier)) return undefined;
  if (specifier.startsWith("npm:")) {
    return /^npm:(@[\w.-]+\/)?[\w.-]+@[^/\s]+(\/.*)?$/.test(specifier)
      ? undefined
      : "an npm: specifier without a version";
  }
  if (specifier.startsWith("jsr:")) return "a jsr: specifier (JSR is not reachable)";
  return "a bare specifier (URL imports see no import map)";
}

async function* tsFiles(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* tsFiles(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

// `from "x"`, `import "x"`, `import("x")`, across line breaks; JSDoc examples included.
const importPattern = /\bfrom\s*["']([^"']+)["']|\bimport\s*\(?\s*["']([^"']+)["']/g;

Deno.test("mod.ts and lib/ import npm packages by full npm:name@version specifiers only", async () => {
  const files = [new URL("mod.ts", repoRoot)];
  for await (const file of tsFiles(new URL("lib/", repoRoot))) files.push(file);
  assert.ok(files.length > 1, "found no .ts files under lib/");
  const problems: string[] = [];
  for (const file of files) {
    const text = await Deno.readTextFile(file);
    for (const match of text.matchAll(importPattern)) {
      const specifier = match[1] ?? match[2];
      const problem = specifierProblem(specifier);
      if (problem === undefined) continue;
      const line = text.slice(0, match.index).split("\n").length;
      const path = file.pathname.slice(repoRoot.pathname.length);
      problems.push(`${path}:${line}: "${specifier}" is ${problem}`);
    }
  }
  assert.deepEqual(problems, [], `Cannot import mod.ts by URL:\n${problems.join("\n")}`);
});
