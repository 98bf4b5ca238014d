/**
 * Argument checks shared by the Tensor ops and the creation functions.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { engine } from "../engine/engine.ts";
import type { KernelParams, KernelSpec } from "../kernels/kernel.ts";

/** A kernel and its parameters for a request: the parameters are checked against the spec. */
export function call<P extends KernelParams>(
  spec: KernelSpec<P>,
  params: P,
): { kernel: string; params: P } {
  return { kernel: spec.name, params };
}

/** A shape for messages: `[2, 3]`. */
export const fmt = (shape: readonly number[]) => `[${shape.join(", ")}]`;
/** Whether two shapes are equal. */
export const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((n, i) => n === b[i]);
/** The number of elements of a shape. */
export const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Throws unless `device` is the host or a working device from `tryAllGpus()`: a TypeError
 * for something else, an Error for a device that was closed or lost.
 */
export function checkDevice(device: unknown, what: string): Device {
  const problem = engine().deviceProblem(device);
  if (problem === undefined) return device as Device;
  const d = device as Partial<Device> | null | undefined;
  const name = typeof d === "object" && d !== null && typeof d.name === "string"
    ? d.name
    : describe(device);
  if (/not a device/.test(problem)) throw new TypeError(`Cannot ${what} on ${name}: ${problem}`);
  throw new Error(`Cannot ${what} on ${name}: ${problem}`);
}

let isTensor: (value: unknown) => boolean = () => false;

/** Names the test for a Tensor that `describe` uses (called once by core.ts). */
export function setTensorTest(test: (value: unknown) => boolean): void {
  isTensor = test;
}

/** A value as a message shows it: strings quoted, BigInts with their `n`, objects by kind. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (Array.isArray(value)) return `[${value.map(describe).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    return isTensor(value) ? String(value) : `a ${value.constructor?.name ?? "object"}`;
  }
  return String(value);
}

/**
 * Throws a TypeError unless `shape` is an array, a RangeError unless every size is a whole
 * number >= 1 and the tensor fits `device`.
 */
export function checkShape(shape: unknown, device: Device, what: string): readonly number[] {
  if (!Array.isArray(shape)) {
    throw new TypeError(
      `Cannot ${what} with shape ${describe(shape)}: the shape must be an array of sizes, ` +
        `such as [2, 3] ([] for a scalar)`,
    );
  }
  if (!shape.every((n) => Number.isInteger(n) && n >= 1)) {
    throw new RangeError(
      `Cannot ${what} with shape [${shape.map(describe).join(", ")}]: sizes must be whole ` +
        `numbers >= 1`,
    );
  }
  const bytes = sizeOf(shape) * 4;
  if (bytes > device.info.maxStorageBufferBindingSize) {
    throw new RangeError(
      `Cannot ${what} with shape ${fmt(shape)} on ${device.name}: its ${bytes} bytes exceed the ` +
        `device's largest binding, ${device.info.maxStorageBufferBindingSize} bytes`,
    );
  }
  return Object.freeze([...shape]);
}
