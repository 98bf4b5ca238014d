/**
 * The chapter's timings table: each section's two parts, the combined line, and its speedup.
 *
 * @module
 */
import type { VNode } from "npm:preact@10.29.8";
import { SECTIONS, timingRows } from "./timings.ts";

/** Props of {@link TimingsTable}. */
export interface TimingsTableProps {
  /** Latest seconds of each line, by label. */
  timings: Readonly<Record<string, number>>;
}

/**
 * Renders the table; lines not yet timed show a dash.
 *
 * @example
 * ```ts
 * import { renderToString } from "npm:preact-render-to-string@6.8.2";
 * import { TimingsTable } from "./TimingsTable.tsx";
 * const html = renderToString(TimingsTable({ timings: { "GPU1 time": 0.5 } }));
 * console.log(html.includes("0.5000")); // true
 * ```
 */
export function TimingsTable({ timings }: TimingsTableProps): VNode {
  return (
    <table class="timings" id="timings">
      <thead>
        <tr>
          <th scope="col">Line</th>
          <th scope="col" class="num">Time (sec)</th>
          <th
            scope="col"
            class="num"
            title="The two lines one after the other, over the combined line"
          >
            Speedup
          </th>
        </tr>
      </thead>
      {SECTIONS.map((section) => (
        <tbody key={section.experiment} data-section={section.experiment}>
          <tr class="section">
            <th colSpan={3} scope="rowgroup">{section.title}</th>
          </tr>
          {timingRows(section, timings).map((row) => (
            <tr key={row.label} data-timed={row.seconds !== undefined ? "yes" : "no"}>
              <td>{row.label}</td>
              <td class="num">{row.seconds !== undefined ? row.seconds.toFixed(4) : "–"}</td>
              <td class="num">
                {row.speedup !== undefined ? `${row.speedup.toFixed(2)}x` : ""}
              </td>
            </tr>
          ))}
        </tbody>
      ))}
    </table>
  );
}
