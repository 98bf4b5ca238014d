/**
 * Buttons that start the chapter's experiments (with size and iterations) and the training
 * of its MLP (with batch and epochs), the run's status, the timings table filling in as
 * each line is timed, and a training run's epochs as they end.
 *
 * @module
 */
import type { VNode } from "npm:preact@10.29.8";
import { useEffect } from "npm:preact@10.29.8/hooks";
import { useSignal } from "npm:@preact/signals@2.11.4";
import type { Experiment, RunLimits, RunRecord } from "../components/protocol.ts";
import { labelsOf, SECTIONS } from "../components/timings.ts";
import { TimingsTable } from "../components/TimingsTable.tsx";
import { TrainTable } from "../components/TrainTable.tsx";
import { connect, run, timings } from "./live.ts";

/** Props of {@link RunPanel}: what the server knew when it rendered the page. */
export interface RunPanelProps {
  limits: RunLimits;
  timings: Record<string, number>;
  run: RunRecord | null;
}

/** One form: an experiment and what its two numbers are called, with their largest values. */
interface RunForm {
  experiment: Experiment;
  title: string;
  size: { label: string; max: number };
  iters: { label: string; max: number };
}

function forms(limits: RunLimits): RunForm[] {
  return [
    ...SECTIONS.map((s) => ({
      experiment: s.experiment,
      title: s.title,
      size: { label: "size", max: limits.maxSize },
      iters: { label: "iters", max: limits.maxIters },
    })),
    {
      experiment: "train",
      title: "Train the MLP on MNIST (data parallel)",
      size: { label: "batch", max: limits.maxBatch },
      iters: { label: "epochs", max: limits.maxEpochs },
    },
  ];
}

/** What a run is, in words: "gpu1-gpu2, 256x256, 20 iters" or "train, batch 256, 1 epoch". */
function describe(r: RunRecord): string {
  if (r.experiment !== "train") return `${r.experiment}, ${r.size}x${r.size}, ${r.iters} iters`;
  return `train, batch ${r.size}, ${r.iters} epoch${r.iters === 1 ? "" : "s"}`;
}

/** The run controls and the timings table. */
export function RunPanel(props: RunPanelProps): VNode {
  useEffect(connect, []);
  const message = useSignal("");
  const runForms = forms(props.limits);
  // The values typed in, per experiment: a re-render must not reset them.
  const values = useSignal<Record<string, { size: string; iters: string }>>(
    Object.fromEntries(
      runForms.map((f) => {
        const d = props.limits.defaults[f.experiment];
        return [f.experiment, { size: String(d.size), iters: String(d.iters) }];
      }),
    ),
  );
  const edit = (experiment: Experiment, field: "size" | "iters", value: string) => {
    values.value = {
      ...values.value,
      [experiment]: { ...values.value[experiment], [field]: value },
    };
  };
  const current = run.value === undefined ? props.run : run.value;
  const busy = current?.status === "running";

  const start = async (experiment: Experiment) => {
    const typed = values.value[experiment];
    message.value = "";
    const response = await fetch("/api/runs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        experiment,
        size: Number(typed.size),
        iters: Number(typed.iters),
      }),
    });
    const body = await response.json();
    if (!response.ok) message.value = body.error ?? `HTTP ${response.status}`;
    else run.value = body;
  };

  return (
    <section class="runs" aria-label="Experiments">
      <div class="run-forms">
        {runForms.map((s) => {
          const typed = values.value[s.experiment];
          return (
            <form
              key={s.experiment}
              class="run-form"
              onSubmit={(e) => {
                e.preventDefault();
                start(s.experiment);
              }}
            >
              <span class="run-title">{s.title}</span>
              {(["size", "iters"] as const).map((field) => (
                <label key={field}>
                  {s[field].label}{" "}
                  <input
                    name={field}
                    type="number"
                    min={1}
                    max={s[field].max}
                    value={typed[field]}
                    onInput={(e) => edit(s.experiment, field, e.currentTarget.value)}
                  />
                </label>
              ))}
              <button type="submit" data-experiment={s.experiment} disabled={busy}>
                Run {s.experiment}
              </button>
            </form>
          );
        })}
      </div>
      <p class="run-status" id="run-status" role="status">
        {message.value
          ? `Not started: ${message.value}`
          : current
          ? `Run ${current.id} (${describe(current)}): ${current.status}` +
            (current.seconds !== undefined ? ` in ${current.seconds.toFixed(2)} s` : "") +
            (current.error ? `: ${current.error}` : "") +
            (current.summary && current.experiment !== "train"
              ? `; "${labelsOf(current.experiment)[2]}": ${
                (current.summary.copy.hiddenFraction * 100).toFixed(0)
              }% of copy time hidden, ${
                (current.summary.efficiency * 100).toFixed(0)
              }% of the best makespan the lanes allow`
              : "")
          : "No run yet."}
        {current && current.status !== "running"
          ? (
            <>
              {" "}
              <a href="/api/trace.json" download="autopar-trace.json">Chrome trace</a>
            </>
          )
          : null}
      </p>
      {current?.epochs && current.epochs.length > 0 ? <TrainTable epochs={current.epochs} /> : null}
      <TimingsTable timings={timings.value ?? props.timings} />
    </section>
  );
}
