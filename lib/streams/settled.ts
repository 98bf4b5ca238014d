/**
 * A tensor's completion as a Promise: resolves once it is computed, rejects with an
 * AggregateError naming the failed op when it is not.
 *
 * @module
 */
import { engine } from "../engine/engine.ts";
import { recordOf, type Tensor } from "../tensor/tensor.ts";

/** Resolves once `t` is computed on its device; rejects with the failure that stopped it. */
export async function computed(t: Tensor): Promise<void> {
  const rec = recordOf(t);
  await engine().settled(rec);
  if (rec.state === "failed") {
    engine().markReported(rec.error!);
    throw new AggregateError([rec.error!], `Cannot compute ${t}: ${rec.error!.message}`);
  }
}
