/**
 * The epochs of a "train" run: loss, accuracies, speed, and how much of the gradient
 * traffic ran under computation.
 *
 * @module
 */
import type { VNode } from "npm:preact@10.29.8";
import type { TrainEpoch } from "./protocol.ts";

/** Props of {@link TrainTable}. */
export interface TrainTableProps {
  epochs: readonly TrainEpoch[];
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * Renders one row per epoch.
 *
 * @example
 * ```ts
 * import { renderToString } from "npm:preact-render-to-string@6.8.2";
 * import { TrainTable } from "./TrainTable.tsx";
 * const epoch = {
 *   epoch: 1,
 *   loss: 0.5,
 *   trainAccuracy: 0.85,
 *   testAccuracy: 0.9,
 *   seconds: 2,
 *   samplesPerSecond: 4000,
 *   gradientHidden: 0.6,
 * };
 * const html = renderToString(TrainTable({ epochs: [epoch] }));
 * console.log(html.includes("90.0%")); // true
 * ```
 */
export function TrainTable({ epochs }: TrainTableProps): VNode {
  return (
    <table class="timings train" id="train-epochs">
      <thead>
        <tr>
          {["Epoch", "Loss", "Train acc", "Test acc", "Seconds", "Samples/s", "Grad hidden"].map((
            h,
          ) => <th key={h} scope="col" class={h === "Epoch" ? undefined : "num"}>{h}</th>)}
        </tr>
      </thead>
      <tbody>
        {epochs.map((e) => (
          <tr key={e.epoch} data-epoch={e.epoch}>
            <td>{e.epoch}</td>
            <td class="num">{e.loss.toFixed(4)}</td>
            <td class="num">{percent(e.trainAccuracy)}</td>
            <td class="num">{percent(e.testAccuracy)}</td>
            <td class="num">{e.seconds.toFixed(2)}</td>
            <td class="num">{e.samplesPerSecond.toFixed(0)}</td>
            <td class="num">{e.gradientHidden === null ? "–" : percent(e.gradientHidden)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
