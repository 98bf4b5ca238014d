/**
 * Live figures of the last second: GFLOP/s, bytes/s, overlap of copies with computation,
 * work in flight per device, a flag while a producer waits on backpressure, and the
 * batches this page missed.
 *
 * @module
 */
import type { VNode } from "npm:preact@10.29.8";
import { useEffect } from "npm:preact@10.29.8/hooks";
import type { LiveStats } from "../components/protocol.ts";
import { formatBytes } from "../components/format.ts";
import { connect, connection, dropped, stats } from "./live.ts";

/** Props of {@link LiveFigures}: the figures of the server when it rendered the page. */
export interface LiveFiguresProps {
  initial: LiveStats;
}

/** The figures, updated from the event stream. */
export function LiveFigures({ initial }: LiveFiguresProps): VNode {
  useEffect(connect, []);
  const s = stats.value ?? initial;
  const inflight = Object.entries(s.inflight);
  const waiting = s.producersWaiting > 0;
  return (
    <section class="figures" aria-label="Live figures">
      <Figure name="Compute" value={`${s.gflops.toFixed(2)} GFLOP/s`} />
      <Figure name="Copies" value={`${formatBytes(s.bytesPerSec)}/s`} />
      <Figure
        name="Overlap"
        value={s.overlap === null ? "–" : `${(s.overlap * 100).toFixed(0)}%`}
        title="Share of copy time that ran while a device computed (last second)"
      />
      <Figure
        name="In flight"
        value={inflight.length === 0
          ? "–"
          : inflight.map(([d, l]) => `${d}: ${l.ops}+${l.waiting}`).join("  ")}
        title="Ops sent and not finished + ops waiting, per device"
      />
      <Figure name="Events" value={String(s.eventsTotal)} />
      <div class={`flag ${waiting ? "on" : ""}`} id="backpressure" data-on={String(waiting)}>
        {waiting ? `Producer waiting on backpressure (${s.producersWaiting})` : "No backpressure"}
      </div>
      <div class={`flag ${dropped.value > 0 ? "warn" : ""}`} id="dropped">
        Dropped batches: {dropped.value}
      </div>
      <div class={`flag conn-${connection.value}`} id="connection">{connection.value}</div>
    </section>
  );
}

function Figure(props: { name: string; value: string; title?: string }): VNode {
  return (
    <div class="figure" title={props.title}>
      <div class="figure-name">{props.name}</div>
      <div class="figure-value">{props.value}</div>
    </div>
  );
}
