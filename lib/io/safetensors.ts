/**
 * safetensors files (Hugging Face's format, what PyTorch checkpoints are shared in): an
 * 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
 * byte range (`data_offsets`, from the end of the header) plus optional string metadata
 * under `"__metadata__"`, padded with spaces to a multiple of 8 bytes, then the tensors'
 * bytes, one after the other. autopar writes float32 ("F32") and reads the other numeric
 * dtypes too, converting them to float32.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { fromArray } from "../tensor/creation.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { StateDictLike } from "../nn/state_dict.ts";

/**
 * The dtypes autopar reads (each converted to float32); it writes "F32".
 *
 * @example
 * ```ts
 * import type { SafetensorsDtype } from "../../mod.ts";
 * const dtype: SafetensorsDtype = "BF16";
 * console.log(dtype); // "BF16"
 * ```
 */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/**
 * Values on the host: a shape and its elements, row-major, as float32.
 *
 * @example
 * ```ts
 * import { encodeSafetensors, type HostTensor } from "../../mod.ts";
 * const w: HostTensor = { shape: [2], data: Float32Array.of(1, 2) };
 * console.log(encodeSafetensors({ w }).length); // 72: 8 + a 56-byte header + 8
 * ```
 */
export interface HostTensor {
  /** Sizes of each dimension (`[]` for a scalar). */
  shape: readonly number[];
  /** The elements. */
  data: Float32Array;
}

/**
 * What {@link decodeSafetensors} found: the tensors in the order of their bytes in the file,
 * each with the dtype it was stored in, and the metadata, if any.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, type DecodedSafetensors, encodeSafetensors } from "../../mod.ts";
 * const bytes = encodeSafetensors({ b: { shape: [], data: Float32Array.of(3) } });
 * const decoded: DecodedSafetensors = decodeSafetensors(bytes);
 * console.log(decoded.tensors.get("b")?.dtype, decoded.metadata); // "F32" undefined
 * ```
 */
export interface DecodedSafetensors {
  /** The tensors by name, in file order. */
  tensors: Map<string, HostTensor & { dtype: SafetensorsDtype }>;
  /** The `"__metadata__"` strings, or undefined when the file has none. */
  metadata: Record<string, string> | undefined;
}

/**
 * Options of {@link encodeSafetensors} and {@link saveSafetensors}.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "../../mod.ts";
 * const bytes = encodeSafetensors({}, { metadata: { format: "pt" } });
 * console.log(decodeSafetensors(bytes).metadata); // { format: "pt" }
 * ```
 */
export interface SaveSafetensorsOptions {
  /**
   * Strings stored under `"__metadata__"` (`{ format: "pt" }` is what PyTorch's writers put).
   * @default {none}
   */
  metadata?: Readonly<Record<string, string>>;
}

/**
 * Options of {@link loadSafetensors}.
 *
 * @example
 * ```ts
 * import { cpu, type LoadSafetensorsOptions } from "../../mod.ts";
 * const options: LoadSafetensorsOptions = { device: cpu() };
 * console.log(options.device?.name); // "cpu"
 * ```
 */
export interface LoadSafetensorsOptions {
  /**
   * Where the tensors are made.
   * @default {cpu()}
   */
  device?: Device;
}

/**
 * A file or byte array that is not valid safetensors: truncated, a bad header, byte ranges
 * that overlap or lie outside the data. `reason` says why; `cause` keeps the JSON error.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, SafetensorsError } from "../../mod.ts";
 * try {
 *   decodeSafetensors(new Uint8Array(4));
 * } catch (e) {
 *   console.log(e instanceof SafetensorsError, (e as SafetensorsError).reason);
 *   // true "the data is 4 bytes, shorter than the 8-byte header length (truncated)"
 * }
 * ```
 */
export class SafetensorsError extends Error {
  /** Why the bytes are not valid, without the "Cannot ..." prefix. */
  readonly reason: string;

  /** An error whose message is `what: reason`. */
  constructor(what: string, reason: string, options?: ErrorOptions) {
    super(`${what}: ${reason}`, options);
    this.name = "SafetensorsError";
    this.reason = reason;
  }
}

/** Bytes per element of each dtype, and how to read one at a byte offset as a number. */
const DTYPES: Record<SafetensorsDtype, [bytes: number, read: (v: DataView, at: number) => number]> =
  {
    F64: [8, (v, at) => v.getFloat64(at, true)],
    F32: [4, (v, at) => v.getFloat32(at, true)],
    F16: [2, (v, at) => halfToNumber(v.getUint16(at, true))],
    BF16: [2, (v, at) => bfloat16ToNumber(v.getUint16(at, true))],
    I64: [8, (v, at) => Number(v.getBigInt64(at, true))],
    I32: [4, (v, at) => v.getInt32(at, true)],
    I16: [2, (v, at) => v.getInt16(at, true)],
    I8: [1, (v, at) => v.getInt8(at)],
    U64: [8, (v, at) => Number(v.getBigUint64(at, true))],
    U32: [4, (v, at) => v.getUint32(at, true)],
    U16: [2, (v, at) => v.getUint16(at, true)],
    U8: [1, (v, at) => v.getUint8(at)],
    BOOL: [1, (v, at) => v.getUint8(at) === 0 ? 0 : 1],
  };

/** IEEE 754 binary16 bits as a number. */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const scratch = new DataView(new ArrayBuffer(4));

/** bfloat16 bits (the top half of a float32) as a number. */
function bfloat16ToNumber(b: number): number {
  scratch.setUint32(0, b << 16, true);
  return scratch.getFloat32(0, true);
}

/** The reference implementation refuses headers larger than this. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA = "__metadata__";
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const isShape = (s: unknown): s is number[] =>
  Array.isArray(s) && s.every((n) => Number.isInteger(n) && n >= 0);

function entriesOf<T>(dict: ReadonlyMap<string, T> | Readonly<Record<string, T>>, what: string) {
  if (dict instanceof Map) return [...dict.entries()] as [string, T][];
  if (typeof dict !== "object" || dict === null || Array.isArray(dict)) {
    throw new TypeError(`Cannot ${what} ${String(dict)}: it must be a Map or an object`);
  }
  return Object.entries(dict) as [string, T][];
}

function checkMetadata(metadata: unknown, what: string): Record<string, string> | undefined {
  if (metadata === undefined) return undefined;
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    throw new TypeError(`Cannot ${what} with metadata ${String(metadata)}: it must be an object`);
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") {
      throw new TypeError(
        `Cannot ${what} with metadata "${k}" = ${String(v)}: metadata values must be strings`,
      );
    }
  }
  return { ...metadata as Record<string, string> };
}

function checkName(name: string, what: string): void {
  if (name === "" || name === METADATA) {
    throw new TypeError(`Cannot ${what} a tensor named "${name}": the name is reserved or empty`);
  }
}

/**
 * The bytes of a safetensors file holding `tensors` as float32 ("F32"), in their order.
 * Throws a TypeError for a reserved name or metadata that is not strings, a RangeError when
 * a shape does not match its data.
 *
 * @example
 * ```ts
 * import { encodeSafetensors } from "../../mod.ts";
 * const bytes = encodeSafetensors({ w: { shape: [2], data: Float32Array.of(1, 2) } });
 * const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
 * console.log(headerLength % 8, bytes.length === 8 + headerLength + 8); // 0 true
 * ```
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  options: SaveSafetensorsOptions = {},
): Uint8Array {
  const what = "encode safetensors of";
  const entries = entriesOf(tensors, what);
  const metadata = checkMetadata(options.metadata, "encode safetensors");
  const header: Record<string, unknown> = metadata ? { [METADATA]: metadata } : {};
  let offset = 0;
  for (const [name, t] of entries) {
    checkName(name, "encode");
    if (!(t?.data instanceof Float32Array) || !isShape(t.shape)) {
      throw new TypeError(
        `Cannot encode "${name}": it must be { shape: whole numbers >= 0, data: Float32Array }`,
      );
    }
    if (sizeOf(t.shape) !== t.data.length) {
      throw new RangeError(
        `Cannot encode "${name}" of shape ${fmt(t.shape)} from ${t.data.length} values: it ` +
          `needs ${sizeOf(t.shape)}`,
      );
    }
    const end = offset + t.data.length * 4;
    header[name] = { dtype: "F32", shape: [...t.shape], data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerBytes + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerBytes);
  let at = 8 + headerBytes;
  for (const [, t] of entries) {
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    } else t.data.forEach((v, i) => view.setFloat32(at + 4 * i, v, true));
    at += t.data.byteLength;
  }
  return out;
}

interface Entry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** The header's JSON object, checked to be one. */
function parseHeader(bytes: Uint8Array, fail: (why: string, cause?: unknown) => never) {
  if (bytes.length < 8) {
    fail(`the data is ${bytes.length} bytes, shorter than the 8-byte header length (truncated)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail(`the header length ${n} exceeds ${MAX_HEADER_BYTES} bytes (not a safetensors file?)`);
  }
  const headerBytes = Number(n);
  if (8 + headerBytes > bytes.length) {
    fail(
      `the header is ${headerBytes} bytes but only ${bytes.length - 8} follow its length ` +
        `(truncated)`,
    );
  }
  const raw = bytes.subarray(8, 8 + headerBytes);
  if (raw[0] !== 0x7b) fail(`the header does not begin with "{" (not a safetensors file?)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch (e) {
    fail(`the header is not JSON: ${(e as Error).message}`, e);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(`the header is not a JSON object`);
  }
  return { header: header as Record<string, unknown>, dataStart: 8 + headerBytes };
}

/** The header's tensor entries, each checked, sorted by where their bytes begin. */
function entriesIn(
  header: Record<string, unknown>,
  fail: (why: string) => never,
): Entry[] {
  const entries: Entry[] = [];
  for (const [name, e] of Object.entries(header)) {
    if (name === METADATA) continue;
    const { dtype, shape, data_offsets: offsets } = (e ?? {}) as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in DTYPES)) {
      fail(
        `tensor "${name}" has dtype ${JSON.stringify(dtype)}, not one of ${
          Object.keys(DTYPES).join(", ")
        }`,
      );
    }
    if (!isShape(shape)) {
      fail(`tensor "${name}" has shape ${JSON.stringify(shape)}, not whole numbers >= 0`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
    ) {
      fail(
        `tensor "${name}" has data_offsets ${
          JSON.stringify(offsets)
        }, not [begin, end] with 0 <= begin <= end`,
      );
    }
    const [begin, end] = offsets as number[];
    const need = sizeOf(shape) * DTYPES[dtype as SafetensorsDtype][0];
    if (end - begin !== need) {
      fail(
        `tensor "${name}" has ${end - begin} bytes at [${begin}, ${end}) where ${dtype} of ` +
          `shape ${fmt(shape)} needs ${need}`,
      );
    }
    entries.push({ name, dtype: dtype as SafetensorsDtype, shape, begin, end });
  }
  return entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
}

/**
 * The tensors and metadata of a safetensors file's bytes, every dtype converted to float32.
 * Checks the whole layout first: throws a {@link SafetensorsError} for bytes that are
 * truncated, a header that is not a JSON object of valid entries, and byte ranges that
 * overlap, leave gaps or lie past the end of the data.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "../../mod.ts";
 * const bytes = encodeSafetensors({ w: { shape: [1, 2], data: Float32Array.of(1, 2) } });
 * const { tensors } = decodeSafetensors(bytes);
 * console.log(tensors.get("w")); // { dtype: "F32", shape: [1, 2], data: Float32Array [1, 2] }
 * ```
 */
export function decodeSafetensors(bytes: Uint8Array): DecodedSafetensors {
  const what = "Cannot decode safetensors";
  const fail = (why: string, cause?: unknown): never => {
    throw new SafetensorsError(what, why, cause === undefined ? undefined : { cause });
  };
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`${what} from ${String(bytes)}: it must be a Uint8Array`);
  }
  const { header, dataStart } = parseHeader(bytes, fail);
  let metadata: Record<string, string> | undefined;
  if (METADATA in header) {
    const m = header[METADATA];
    if (
      typeof m !== "object" || m === null || Array.isArray(m) ||
      !Object.values(m).every((v) => typeof v === "string")
    ) {
      fail(`"${METADATA}" is not an object of strings`);
    }
    metadata = m as Record<string, string>;
  }
  const entries = entriesIn(header, fail);
  const dataBytes = bytes.length - dataStart;
  let reached = 0;
  let previous: Entry | undefined;
  for (const e of entries) {
    if (e.end > dataBytes) {
      fail(
        `tensor "${e.name}" has bytes [${e.begin}, ${e.end}) past the end of the ${dataBytes} ` +
          `data bytes (truncated?)`,
      );
    }
    if (e.begin < reached) {
      fail(
        `tensor "${e.name}" at [${e.begin}, ${e.end}) overlaps "${previous!.name}" at [${
          previous!.begin
        }, ${previous!.end})`,
      );
    }
    if (e.begin > reached) fail(`bytes [${reached}, ${e.begin}) of the data belong to no tensor`);
    reached = e.end;
    previous = e;
  }
  if (reached !== dataBytes) {
    fail(`bytes [${reached}, ${dataBytes}) of the data belong to no tensor`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + dataStart, dataBytes);
  const tensors = new Map<string, HostTensor & { dtype: SafetensorsDtype }>();
  for (const e of entries) {
    const [width, read] = DTYPES[e.dtype];
    const data = new Float32Array(sizeOf(e.shape));
    for (let i = 0; i < data.length; i++) data[i] = read(view, e.begin + i * width);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

/**
 * Writes `dict` (a state dict, or any named tensors, on any devices) to `path` as a
 * safetensors file of float32 tensors in the dict's order; tensors on a GPU are read back
 * first. PyTorch reads it with `safetensors.torch.load_file`. Throws a TypeError for a
 * value that is not a live Tensor, a reserved name or bad metadata, before writing anything.
 *
 * @example
 * ```ts
 * import { Linear, loadSafetensors, saveSafetensors } from "../../mod.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveSafetensors(path, new Linear(3, 2, { seed: 1 }).stateDict(), { metadata: { format: "pt" } });
 * console.log([...(await loadSafetensors(path)).keys()]); // ["weight", "bias"]
 * await Deno.remove(path);
 * ```
 */
export async function saveSafetensors(
  path: string | URL,
  dict: StateDictLike,
  options: SaveSafetensorsOptions = {},
): Promise<void> {
  const what = "save safetensors of";
  const entries = entriesOf(dict, what);
  for (const [name, t] of entries) {
    checkName(name, "save");
    if (!(t instanceof Tensor) || t.disposed) {
      throw new TypeError(`Cannot save "${name}", ${String(t)}: it must be a live Tensor`);
    }
  }
  checkMetadata(options.metadata, "save safetensors");
  const values = await Promise.all(entries.map(([, t]) => t.data()));
  const host = new Map(entries.map(([name, t], i) => [name, { shape: t.shape, data: values[i] }]));
  await Deno.writeFile(path, encodeSafetensors(host, options));
}

/**
 * Reads a safetensors file (written by autopar, or by PyTorch's `safetensors.torch.save_file`)
 * into float32 tensors on `device`, by name in file order; F16, BF16, F64 and integer
 * tensors are converted. Rejects with a {@link SafetensorsError} naming the file when it is
 * not valid (truncated, a bad header, overlapping or out-of-range byte ranges), and with a
 * RangeError for an empty tensor (autopar's tensors have sizes >= 1).
 *
 * @example
 * ```ts
 * import { encodeSafetensors, loadSafetensors } from "../../mod.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await Deno.writeFile(path, encodeSafetensors({ w: { shape: [2], data: Float32Array.of(1, 2) } }));
 * const dict = await loadSafetensors(path);
 * console.log(await dict.get("w")!.data()); // Float32Array [1, 2]
 * await Deno.remove(path);
 * ```
 */
export async function loadSafetensors(
  path: string | URL,
  options: LoadSafetensorsOptions = {},
): Promise<Map<string, Tensor>> {
  const bytes = await Deno.readFile(path);
  let decoded: DecodedSafetensors;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e;
    throw new SafetensorsError(`Cannot load ${String(path)}`, e.reason, { cause: e });
  }
  for (const [name, t] of decoded.tensors) {
    if (t.data.length === 0) {
      throw new RangeError(
        `Cannot load tensor "${name}" of shape ${fmt(t.shape)} from ${String(path)}: autopar's ` +
          `tensors have sizes >= 1`,
      );
    }
  }
  const out = new Map<string, Tensor>();
  for (const [name, t] of decoded.tensors) {
    out.set(name, fromArray(t.data, t.shape, { device: options.device }));
  }
  return out;
}
