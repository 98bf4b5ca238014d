/** The model and batch the DistributedDataParallel test trains, the same in every process. */
import { fromArray, Linear, ReLU, Sequential, type Tensor } from "../../mod.ts";

/** A small MLP with the given initialisation seed. */
export function ddpModel(seed: number): Sequential {
  return new Sequential(
    new Linear(5, 8, { seed }),
    new ReLU(),
    new Linear(8, 3, { seed: seed + 1 }),
  );
}

/** 12 rows of 5 features and their classes: 2, 3, 4 and 6 ranks split it evenly. */
export function ddpBatch(): { x: Tensor; y: Tensor; rows: number } {
  const rows = 12;
  const x = fromArray(Array.from({ length: rows * 5 }, (_, i) => Math.sin(1.7 * i)), [rows, 5]);
  const y = fromArray(Array.from({ length: rows }, (_, i) => (i * 7) % 3), [rows]);
  return { x, y, rows };
}
