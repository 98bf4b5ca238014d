/**
 * A kernel that fails to compile, registered once (this module) for the tests that need an op
 * to fail on a device: its WGSL body is not WGSL, and it has no CPU twin.
 *
 * @module
 */
import { registerKernel } from "../../lib/kernels/registry.ts";

/** The broken kernel's name, as an op request's `kernel`. */
export const BROKEN_KERNEL = "broken_kernel";

registerKernel({
  name: BROKEN_KERNEL,
  inputTypes: [],
  outputTypes: ["f32"],
  wgsl: "@compute @workgroup_size(1) fn main() { this is not WGSL }",
});
