import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  fromArray,
  Linear,
  loadSafetensors,
  SafetensorsError,
  saveSafetensors,
  Sequential,
  tryAllGpus,
} from "../../mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu] = await tryAllGpus({ count: 1 });
const fixtures = new URL("./fixtures/", import.meta.url);
const script = new URL("safetensors_fixture.py", fixtures).pathname;

/** Whether python3 runs here (the cross-implementation tests need it). */
const python = await new Deno.Command("python3", { args: ["--version"], stdout: "null" })
  .output().then((o) => o.success, () => false);

/** The bytes of a safetensors file with `header` (a JSON object) and `data` after it. */
function fileOf(header: unknown, data = new Uint8Array(0), headerLength?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

Deno.test("encodeSafetensors() writes the exact layout: length, padded JSON header, data in order", () => {
  const bytes = encodeSafetensors(
    { b: { shape: [2], data: Float32Array.of(1, 2) }, a: { shape: [], data: Float32Array.of(3) } },
    { metadata: { format: "pt" } },
  );
  const view = new DataView(bytes.buffer);
  const n = Number(view.getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const json = '{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],' +
    '"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[],"data_offsets":[8,12]}}';
  assert.equal(text, json + " ".repeat(n - json.length));
  assert.equal(bytes.length, 8 + n + 12);
  assert.deepEqual(
    [0, 1, 2].map((i) => view.getFloat32(8 + n + 4 * i, true)),
    [1, 2, 3],
  );
});

Deno.test("decodeSafetensors() gives back what encodeSafetensors() wrote, in order", () => {
  const tensors = new Map([
    ["layers.0.weight", { shape: [2, 3], data: Float32Array.of(1, -2, 3.5, 0, 1e-30, -1e30) }],
    ["layers.0.bias", { shape: [3], data: Float32Array.of(0.25, 0.5, 0.75) }],
    ["scalar", { shape: [], data: Float32Array.of(-7) }],
  ]);
  const decoded = decodeSafetensors(encodeSafetensors(tensors, { metadata: { epoch: "3" } }));
  assert.deepEqual(decoded.metadata, { epoch: "3" });
  assert.deepEqual([...decoded.tensors.keys()], [...tensors.keys()]);
  for (const [name, t] of tensors) {
    assert.deepEqual(decoded.tensors.get(name), { dtype: "F32", ...t });
  }
  assert.equal(decodeSafetensors(encodeSafetensors({})).tensors.size, 0);
});

Deno.test("loadSafetensors() reads a file written by another implementation (Python)", async () => {
  const expected = JSON.parse(
    await Deno.readTextFile(new URL("python_fixture.json", fixtures)),
  ) as {
    metadata: Record<string, string>;
    tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
  };
  const bytes = await Deno.readFile(new URL("python_fixture.safetensors", fixtures));
  const decoded = decodeSafetensors(bytes);
  assert.deepEqual(decoded.metadata, expected.metadata);
  // The Python writer orders by dtype width, then name: the file order, not the header's.
  assert.deepEqual([...decoded.tensors.keys()], [
    "double",
    "steps",
    "embed.weight",
    "labels",
    "bf16",
    "half",
  ]);
  const loaded = await loadSafetensors(new URL("python_fixture.safetensors", fixtures));
  for (const [name, e] of Object.entries(expected.tensors)) {
    assert.equal(decoded.tensors.get(name)!.dtype, e.dtype, name);
    assert.deepEqual(loaded.get(name)!.shape, e.shape, name);
    assert.deepEqual([...await loaded.get(name)!.data()], e.values, name);
  }
});

Deno.test({
  name: "a file saveSafetensors() wrote reads back in the Python implementation",
  ignore: !python,
  ...opts,
  fn: async () => {
    const model = new Sequential(new Linear(3, 4, { seed: 5 }), new Linear(4, 2, { seed: 6 }));
    const path = await Deno.makeTempFile({ suffix: ".safetensors" });
    try {
      await saveSafetensors(path, model.stateDict(), { metadata: { format: "pt" } });
      const out = await new Deno.Command("python3", { args: [script, "read", path] }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const read = JSON.parse(new TextDecoder().decode(out.stdout)) as {
        metadata: Record<string, string>;
        order: string[];
        tensors: Record<string, { shape: number[]; values: number[] }>;
      };
      assert.deepEqual(read.metadata, { format: "pt" });
      assert.deepEqual(read.order, model.namedParameters().map(([n]) => n));
      for (const [name, p] of model.namedParameters()) {
        assert.deepEqual(read.tensors[name].shape, p.shape, name);
        assert.deepEqual(read.tensors[name].values, [...await p.data()], name);
      }
    } finally {
      await Deno.remove(path);
    }
  },
});

Deno.test({
  name: "the Python fixture script makes the checked-in fixture byte for byte",
  ignore: !python,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const out = await new Deno.Command("python3", {
        args: [script, "write", `${dir}/f.safetensors`, `${dir}/f.json`],
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      assert.deepEqual(
        await Deno.readFile(`${dir}/f.safetensors`),
        await Deno.readFile(new URL("python_fixture.safetensors", fixtures)),
      );
      assert.deepEqual(
        JSON.parse(await Deno.readTextFile(`${dir}/f.json`)),
        JSON.parse(await Deno.readTextFile(new URL("python_fixture.json", fixtures))),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("decodeSafetensors() converts F16, BF16, F64 and integer dtypes to float32", () => {
  const data = new Uint8Array(2 + 2 + 8 + 8 + 1);
  const v = new DataView(data.buffer);
  v.setUint16(0, 0x3c00, true); // F16 1
  v.setUint16(2, 0xc049, true); // BF16 -3.140625
  v.setFloat64(4, 1 / 3, true);
  v.setBigInt64(12, -5n, true);
  v.setUint8(20, 7);
  const { tensors } = decodeSafetensors(fileOf({
    h: { dtype: "F16", shape: [1], data_offsets: [0, 2] },
    b: { dtype: "BF16", shape: [1], data_offsets: [2, 4] },
    d: { dtype: "F64", shape: [1], data_offsets: [4, 12] },
    i: { dtype: "I64", shape: [1], data_offsets: [12, 20] },
    u: { dtype: "U8", shape: [1], data_offsets: [20, 21] },
  }, data));
  assert.deepEqual(
    ["h", "b", "d", "i", "u"].map((k) => tensors.get(k)!.data[0]),
    [1, -3.140625, Math.fround(1 / 3), -5, 7],
  );
});

Deno.test("decodeSafetensors() refuses truncated files and bad headers, saying why", () => {
  const good = encodeSafetensors({ w: { shape: [2], data: Float32Array.of(1, 2) } });
  const cases: [Uint8Array, RegExp][] = [
    [good.subarray(0, 5), /shorter than the 8-byte header length \(truncated\)/],
    [good.subarray(0, 20), /only 12 follow its length \(truncated\)/],
    [good.subarray(0, good.length - 4), /past the end of the 4 data bytes \(truncated\?\)/],
    [fileOf("x".repeat(8)), /does not begin with "\{"/],
    [fileOf({}, undefined, 2e8), /exceeds 100000000 bytes/],
    [fileOf(["a"]).map((b, i) => i === 8 ? 0x7b : b), /not JSON/],
    [fileOf({ w: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, f32(1)), /needs 8/],
    [fileOf({ w: { dtype: "Q8", shape: [1], data_offsets: [0, 1] } }), /dtype "Q8", not one of/],
    [fileOf({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }), /shape \[-1\]/],
    [fileOf({ w: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }), /data_offsets \[4,0\]/],
    [fileOf({ __metadata__: { n: 1 } }), /"__metadata__" is not an object of strings/],
  ];
  for (const [bytes, why] of cases) {
    assert.throws(() => decodeSafetensors(bytes), (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, String(e));
      assert.match(e.message, /^Cannot decode safetensors: /);
      assert.match(e.message, why);
      return true;
    });
  }
});

Deno.test("decodeSafetensors() refuses overlapping, gapped and out-of-range byte ranges", () => {
  const two = (a: number[], b: number[], bytes: number) =>
    fileOf({
      a: { dtype: "F32", shape: [1], data_offsets: a },
      b: { dtype: "F32", shape: [1], data_offsets: b },
    }, new Uint8Array(bytes));
  assert.throws(() => decodeSafetensors(two([0, 4], [2, 6], 8)), /"b" at \[2, 6\) overlaps "a"/);
  assert.throws(() => decodeSafetensors(two([0, 4], [0, 4], 4)), /overlaps/);
  assert.throws(() => decodeSafetensors(two([0, 4], [8, 12], 12)), /bytes \[4, 8\) .* no tensor/);
  assert.throws(() => decodeSafetensors(two([0, 4], [4, 8], 12)), /bytes \[8, 12\) .* no tensor/);
  assert.throws(() => decodeSafetensors(two([0, 4], [8, 12], 8)), /"b" has bytes \[8, 12\) past/);
});

Deno.test("encodeSafetensors() and saveSafetensors() refuse bad input before writing", async () => {
  const data = Float32Array.of(1, 2);
  assert.throws(() => encodeSafetensors({ w: { shape: [3], data } }), RangeError);
  assert.throws(() => encodeSafetensors({ __metadata__: { shape: [2], data } }), TypeError);
  assert.throws(
    () => encodeSafetensors({}, { metadata: { n: 1 as unknown as string } }),
    /metadata values must be strings/,
  );
  const path = await Deno.makeTempFile();
  try {
    const gone = fromArray([1], [1]);
    gone.dispose();
    await assert.rejects(() => saveSafetensors(path, { gone }), /must be a live Tensor/);
    assert.equal((await Deno.readFile(path)).length, 0);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("loadSafetensors() names the file it cannot read", async () => {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    await Deno.writeFile(path, new Uint8Array(3));
    await assert.rejects(() => loadSafetensors(path), (e: unknown) => {
      assert.ok(e instanceof SafetensorsError);
      assert.match(e.message, new RegExp(`^Cannot load ${path}: the data is 3 bytes`));
      return true;
    });
    await Deno.writeFile(path, fileOf({ e: { dtype: "F32", shape: [0], data_offsets: [0, 0] } }));
    await assert.rejects(() => loadSafetensors(path), /tensor "e" of shape \[0\]/);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test({
  name: "saveSafetensors() reads tensors back from a GPU; loadSafetensors() makes them there",
  ignore: !gpu,
  ...opts,
  fn: async () => {
    const host = new Linear(5, 3, { seed: 9 });
    const onGpu = new Linear(5, 3, { seed: 9, device: gpu });
    const path = await Deno.makeTempFile({ suffix: ".safetensors" });
    try {
      await saveSafetensors(path, onGpu.stateDict());
      const back = await loadSafetensors(path, { device: gpu });
      for (const [name, p] of host.namedParameters()) {
        const t = back.get(name)!;
        assert.equal(t.device, gpu);
        assert.deepEqual(await t.data(), await p.data(), name);
      }
    } finally {
      await Deno.remove(path);
    }
  },
});
