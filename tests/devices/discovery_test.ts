/**
 * Tests of device discovery: `tryAllGpus()`, `tryGpu()` and `cpu()`. Environment variables
 * that change discovery (AUTOPAR_DEVICES, a missing adapter) are tested in subprocesses.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cpu, tryAllGpus, tryGpu } from "../../mod.ts";

const repoRoot = new URL("../../", import.meta.url);
const modUrl = new URL("mod.ts", repoRoot).href;

// Read before anything here requests an adapter: discovery sets it when it is unset.
const lpNumThreadsBefore = Deno.env.get("LP_NUM_THREADS");

/** Runs `code` (TypeScript, printing one JSON line last) in a fresh Deno with extra `env`. */
async function runIsolated(code: string, env: Record<string, string>): Promise<unknown> {
  const { code: exitCode, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    cwd: repoRoot,
    env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const out = new TextDecoder().decode(stdout);
  const err = new TextDecoder().decode(stderr);
  assert.equal(exitCode, 0, `the subprocess failed:\n${err}${out}`);
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

/** Whether a fresh process finds a WebGPU adapter, asked without touching this one. */
async function adapterInFreshProcess(env: Record<string, string> = {}): Promise<boolean> {
  const result = await runIsolated(
    `console.log(JSON.stringify((await navigator.gpu?.requestAdapter()) != null));`,
    env,
  );
  return result === true;
}

Deno.test({
  name: "tryAllGpus({ count: 2 }) makes gpu:0 and gpu:1 and splits the cores for llvmpipe",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const devices = await tryAllGpus({ count: 2 });
    if (devices.length === 0) {
      assert.equal(await adapterInFreshProcess(), false, "WebGPU has an adapter, but no devices");
      return;
    }
    assert.deepEqual(devices.map((d) => [d.name, d.kind, d.index]), [
      ["gpu:0", "webgpu", 0],
      ["gpu:1", "webgpu", 1],
    ]);
    const cores = navigator.hardwareConcurrency;
    const given = Number(lpNumThreadsBefore);
    const expectedThreads = Number.isInteger(given) && given > 0
      ? given
      : Math.max(1, Math.floor(cores / 2));
    for (const device of devices) {
      assert.ok(device.info.adapter.length > 0, `${device.name} has no adapter description`);
      if (/llvmpipe/i.test(device.info.adapter)) {
        assert.equal(device.info.software, true, `${device.name} on llvmpipe is not software`);
        assert.equal(device.info.threads, expectedThreads);
      }
    }
    if (devices[0].info.software) {
      assert.equal(Deno.env.get("LP_NUM_THREADS"), String(expectedThreads));
    }
  },
});

Deno.test({
  name: "tryAllGpus() returns the same device objects on a second call",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const first = await tryAllGpus({ count: 2 });
    const second = await tryAllGpus({ count: 2 });
    assert.equal(second.length, first.length);
    for (let i = 0; i < first.length; i++) assert.equal(second[i], first[i]);
  },
});

Deno.test({
  name: "tryGpu(0) is gpu:0 and tryGpu(99) falls back to cpu()",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const devices = await tryAllGpus({ count: 2 });
    const gpu0 = await tryGpu(0);
    if (devices.length > 0) {
      assert.equal(gpu0, devices[0]);
      assert.equal(gpu0.name, "gpu:0");
    } else {
      assert.equal(gpu0, cpu());
    }
    assert.equal(await tryGpu(99), cpu());
    assert.equal(cpu().name, "cpu");
    assert.equal(cpu().kind, "cpu");
  },
});

Deno.test("tryAllGpus() throws a RangeError naming a count that is not a whole number >= 1", async () => {
  for (const count of [0, -1, 1.5, NaN]) {
    await assert.rejects(tryAllGpus({ count }), (e: unknown) => {
      assert.ok(e instanceof RangeError, `count ${count} gave ${e}`);
      const value = String(count).replace(/[.\-]/g, "\\$&");
      assert.match(e.message, new RegExp(`(?<![\\w.-])${value}(?![\\w.])`));
      return true;
    });
  }
});

Deno.test("tryAllGpus() and tryGpu() throw a RangeError naming a bad AUTOPAR_DEVICES", async () => {
  const result = await runIsolated(
    `
    import { tryAllGpus, tryGpu } from ${JSON.stringify(modUrl)};
    const failure = async (p: Promise<unknown>) => {
      try {
        await p;
        return null;
      } catch (e) {
        return { name: (e as Error).name, message: (e as Error).message };
      }
    };
    console.log(JSON.stringify([await failure(tryAllGpus()), await failure(tryGpu())]));
    `,
    { AUTOPAR_DEVICES: "abc" },
  ) as ({ name: string; message: string } | null)[];
  for (const failure of result) {
    assert.ok(failure, "AUTOPAR_DEVICES=abc did not throw");
    assert.equal(failure.name, "RangeError");
    assert.match(failure.message, /abc/);
  }
});

/**
 * No WebGPU adapter: only the Vulkan backend (DENO_WEBGPU_BACKEND), with no Vulkan drivers
 * (VK_ICD_FILENAMES and VK_DRIVER_FILES point nowhere). llvmpipe reaches Deno through GL, so
 * the Vulkan variables alone do not hide it.
 */
const noAdapterEnv = {
  DENO_WEBGPU_BACKEND: "vulkan",
  VK_ICD_FILENAMES: "/nonexistent",
  VK_DRIVER_FILES: "/nonexistent",
};

Deno.test("without a WebGPU adapter tryAllGpus() is [] and tryGpu() is cpu(), which computes", async () => {
  const result = await runIsolated(
    `
    import { cpu, fromArray, tryAllGpus, tryGpu } from ${JSON.stringify(modUrl)};
    const devices = await tryAllGpus();
    const device = await tryGpu();
    const a = fromArray([1, 2, 3, 4], [2, 2], { device });
    const product = [...(await a.mm(a).add(a).data())];
    const adapterFound = (await navigator.gpu?.requestAdapter()) != null;
    console.log(JSON.stringify({
      adapterFound,
      devices: devices.length,
      isCpu: device === cpu(),
      product,
    }));
    `,
    noAdapterEnv,
  );
  assert.deepEqual(result, {
    adapterFound: false,
    devices: 0,
    isCpu: true,
    product: [8, 12, 18, 26],
  });
});

Deno.test({
  name: "tryAllGpus({ backend }) starts each backend, and device.info.backend names it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const result = await runIsolated(
      `
      import { closeDevices, fromArray, tryAllGpus } from ${JSON.stringify(modUrl)};
      const out = [];
      for (const backend of ["deno", "dawn"]) {
        const devices = await tryAllGpus({ backend, count: 2 });
        const a = fromArray([1, 2, 3, 4], [2, 2], { device: devices[0] });
        out.push({ backends: devices.map((d) => d.info.backend), product: [...(await a.mm(a).data())] });
        await closeDevices();
      }
      console.log(JSON.stringify(out));
      `,
      {},
    ) as { backends: string[]; product: number[] }[];
    if (result[0].backends.length === 0) {
      assert.equal(await adapterInFreshProcess(), false, "WebGPU has an adapter, but no devices");
      return;
    }
    assert.deepEqual(result.map((r) => r.backends), [["deno", "deno"], ["dawn", "dawn"]]);
    for (const r of result) assert.deepEqual(r.product, [7, 10, 15, 22]);
  },
});

Deno.test("asking for the other backend while devices run is an Error that names closeDevices()", async () => {
  const result = await runIsolated(
    `
    import { tryAllGpus } from ${JSON.stringify(modUrl)};
    const devices = await tryAllGpus({ backend: "deno", count: 1 });
    let message = "no error";
    try {
      await tryAllGpus({ backend: "dawn" });
    } catch (e) {
      message = e.message;
    }
    console.log(JSON.stringify({ found: devices.length, message }));
    `,
    {},
  ) as { found: number; message: string };
  if (result.found === 0) return; // no adapter: nothing runs, so nothing to refuse
  assert.match(result.message, /already run on "deno"; call closeDevices\(\) first/);
});

Deno.test("Dawn without a Vulkan driver: an Error naming the fix, or a one-line fallback with auto", async () => {
  const noVulkan = { VK_ICD_FILENAMES: "/nonexistent", VK_DRIVER_FILES: "/nonexistent" };
  const explicit = await runIsolated(
    `
    import { tryAllGpus } from ${JSON.stringify(modUrl)};
    let message = "no error";
    try {
      await tryAllGpus({ backend: "dawn" });
    } catch (e) {
      message = e.message;
    }
    console.log(JSON.stringify(message));
    `,
    { ...noVulkan, AUTOPAR_WEBGPU: "dawn" },
  ) as string;
  assert.match(explicit, /Cannot start WebGPU backend "dawn"/);
  assert.match(explicit, /apt-get install -y -t bookworm-backports mesa-vulkan-drivers/);

  const { stderr, stdout } = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { tryAllGpus } from ${JSON.stringify(modUrl)};
       const devices = await tryAllGpus({ count: 1 });
       console.log(JSON.stringify(devices.map((d) => d.info.backend)));`,
    ],
    cwd: repoRoot,
    env: noVulkan,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(stderr).split("\n").filter((l) =>
    l.startsWith("autopar:")
  );
  assert.equal(lines.length, 1, `expected one line about the fallback, got: ${lines.join("\n")}`);
  assert.match(lines[0], /dawn could not start .*; using deno\. To fix: .*mesa-vulkan-drivers/);
  const backends = JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").at(-1)!);
  // Deno's WebGPU still finds llvmpipe through GL, or nothing at all on a bare machine.
  assert.ok(backends.every((b: string) => b === "deno"), `fell back to ${backends}`);
});
