import assert from "node:assert/strict";
import {
  adapterPlan,
  backendChoice,
  backendsToTry,
  parseDawnAdapterList,
} from "../../lib/devices/backend.ts";
import {
  backendFix,
  lavapipeInstalled,
  MESA_INSTALL_COMMAND,
} from "../../lib/devices/discovery.ts";

Deno.test("backendChoice() takes the option first, then AUTOPAR_WEBGPU, else auto", () => {
  assert.equal(backendChoice(undefined, undefined), "auto");
  assert.equal(backendChoice(undefined, ""), "auto");
  assert.equal(backendChoice(undefined, "deno"), "deno");
  assert.equal(backendChoice("dawn", "deno"), "dawn");
  assert.deepEqual(backendsToTry("auto"), ["dawn", "deno"]);
  assert.deepEqual(backendsToTry("deno"), ["deno"]);
});

Deno.test("an unknown backend is a RangeError that names it and the valid ones", () => {
  assert.throws(() => backendChoice("metal"), (e: unknown) => {
    assert.ok(e instanceof RangeError);
    assert.match(e.message, /backend "metal"/);
    assert.match(e.message, /"auto", "deno", "dawn"/);
    return true;
  });
  assert.throws(() => backendChoice(undefined, "wgpu"), /AUTOPAR_WEBGPU="wgpu"/);
});

Deno.test("the adapter list of dawn.node's refusal is parsed into names and APIs", () => {
  const message = `no suitable backends found
Available adapters:
 * backend: 'vulkan', name: 'NVIDIA H200'
 * backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'`;
  assert.deepEqual(parseDawnAdapterList(message), [
    { api: "vulkan", name: "NVIDIA H200" },
    { api: "vulkan", name: "llvmpipe (LLVM 15.0.6, 256 bits)" },
  ]);
  assert.deepEqual(parseDawnAdapterList("no adapter found"), []);
});

Deno.test("one adapter is split into logical devices; several get one device each", () => {
  const lvp = { api: "vulkan", name: "llvmpipe (LLVM 15.0.6, 256 bits)" };
  const a = { api: "vulkan", name: "NVIDIA A100" };
  const b = { api: "vulkan", name: "NVIDIA H200" };
  // One adapter (or none listed, as with Deno's WebGPU): logical devices, 2 by default.
  assert.deepEqual(adapterPlan([lvp], undefined), { adapters: [lvp.name, lvp.name], physical: 1 });
  assert.deepEqual(adapterPlan([], 3), {
    adapters: [undefined, undefined, undefined],
    physical: 0,
  });
  // Hardware adapters leave the software one out; one device each unless a count is given.
  assert.deepEqual(adapterPlan([a, lvp, b], undefined), {
    adapters: [a.name, b.name],
    physical: 2,
  });
  assert.deepEqual(adapterPlan([a, b], 3).adapters, [a.name, b.name, a.name]);
  assert.deepEqual(adapterPlan([a, b], 1).adapters, [a.name]);
  // A hardware adapter beside llvmpipe is one physical adapter.
  assert.deepEqual(adapterPlan([lvp, a], undefined), { adapters: [a.name, a.name], physical: 1 });
});

Deno.test("the fix for a refused Vulkan driver is the exact Mesa 25 install command", () => {
  const fix = backendFix("dawn", "Vulkan shaderUniform*ArrayDynamicIndexing required");
  assert.ok(fix.includes(MESA_INSTALL_COMMAND));
  assert.match(MESA_INSTALL_COMMAND, /bookworm-backports mesa-vulkan-drivers/);
});

Deno.test("lavapipeInstalled() follows VK_ICD_FILENAMES when it is set", () => {
  const before = Deno.env.get("VK_ICD_FILENAMES");
  try {
    Deno.env.set("VK_ICD_FILENAMES", "/nonexistent/lvp_icd.x86_64.json");
    assert.equal(lavapipeInstalled(), false);
    const file = Deno.makeTempFileSync({ prefix: "lvp_icd", suffix: ".json" });
    Deno.env.set("VK_ICD_FILENAMES", file);
    assert.equal(lavapipeInstalled(), true);
    Deno.removeSync(file);
  } finally {
    if (before === undefined) Deno.env.delete("VK_ICD_FILENAMES");
    else Deno.env.set("VK_ICD_FILENAMES", before);
  }
});
