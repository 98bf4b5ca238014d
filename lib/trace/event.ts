/**
 * The trace event: one span of work as plain serialisable data. The engine emits them
 * (the type is defined with it, lib/engine/trace_event.ts); the dashboard, the summaries and
 * the exporters only read them.
 *
 * @module
 */
export type { TraceEvent } from "../engine/trace_event.ts";
