/** The data set the distributed Trainer test trains on, the same in every process. */
import type { Dataset } from "../../mod.ts";

/** Epochs of the test. */
export const EPOCHS = 3;
/** Samples per step over all ranks: 2 ranks take 6 each. */
export const GLOBAL_BATCH = 12;

/** 24 rows of 5 features and their 3 classes. */
export function trainerData(): Dataset {
  const count = 24;
  const images = Float32Array.from({ length: count * 5 }, (_, i) => Math.sin(1.3 * i));
  const labels = Float32Array.from({ length: count }, (_, i) => (i * 5) % 3);
  return { images, labels, count };
}
