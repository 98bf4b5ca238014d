// What the fuser's CPU tests share (tests/capture/fuse_test.ts, fuse_review_test.ts): kernels
// as a segment plans them, and the host's way of running a plan on slot arrays.
import type { PlannedKernel } from "../../lib/capture/fuse.ts";
import { kernel } from "../../lib/kernels/registry.ts";
import type { KernelParams } from "../../lib/kernels/kernel.ts";

/** Elements of a slot, unless a test says otherwise. */
export const N = 8;

/** A binary kernel of `N` elements (`extra` overrides its parameters). */
export const bin = (op: string, broadcast: string, bind: number[], extra: KernelParams = {}) => ({
  kernel: "binary",
  params: { op, broadcast, n: N, cols: 0, scalar: 0, ...extra },
  bind,
});

/** A unary kernel of `n` elements. */
export const un = (op: string, bind: number[], n = N) => ({
  kernel: "unary",
  params: { op, n },
  bind,
});

/** Kernels as a segment plans them: each one recorded op. */
export const plan = (ks: Omit<PlannedKernel, "ops">[]): PlannedKernel[] =>
  ks.map((k, i) => ({ ...k, ops: [i] }));

/** Runs kernels on slot arrays: the host's way of running what a segment would. */
export function execute(kernels: PlannedKernel[], memory: Float32Array[]): void {
  for (const k of kernels) {
    const spec = kernel(k.kernel);
    const outputs = spec.outputTypes(k.params).length;
    const inputs = k.bind.length - outputs;
    // Fused kernels are given their stored bindings' old values too (in-place members read them).
    const given = k.kernel.startsWith("fused") || k.kernel.endsWith("_epilogue")
      ? k.bind.map((s) => memory[s])
      : spec.inPlace
      ? [...k.bind.slice(0, inputs).map((s) => memory[s]), memory[k.bind[inputs]]]
      : k.bind.slice(0, inputs).map((s) => memory[s]);
    const made = spec.cpu(given, k.params);
    k.bind.slice(inputs).forEach((s, j) => memory[s] = made[j]);
  }
}
