/**
 * The page's one connection to the server: an EventSource on `/api/events` that feeds the
 * task store and the signals every island reads. It opens only in the browser, on first use.
 *
 * @module
 */
import { signal } from "npm:@preact/signals@2.11.4";
import type {
  Batch,
  DeviceSummary,
  Hello,
  LiveStats,
  RunRecord,
  State,
} from "../components/protocol.ts";
import { TaskStore } from "./task_store.ts";

/** The spans of every event received. */
export const store: TaskStore = new TaskStore();
/** Bumped after each batch: the task stream redraws when it changes. */
export const storeVersion = signal(0);
/** "connecting", "live", or "lost" (the browser retries). */
export const connection = signal<"connecting" | "live" | "lost">("connecting");
export const stats = signal<LiveStats | null>(null);
/** Latest seconds per line; null until the first state message. */
export const timings = signal<Record<string, number> | null>(null);
export const run = signal<RunRecord | null | undefined>(undefined);
/** Batches the server dropped because this page read too slowly. */
export const dropped = signal(0);
export const devices = signal<DeviceSummary[]>([]);

let offset = 0; // server clock minus this page's clock
let serverId = "";
let opened = false;

/** The server's clock now (ms), estimated from its last message. */
export function serverNow(): number {
  return performance.now() + offset;
}

/** Opens the event stream once; does nothing outside a browser. */
export function connect(): void {
  if (opened || typeof EventSource === "undefined") return;
  opened = true;
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => (connection.value = "live"));
  source.addEventListener("error", () => (connection.value = "lost"));
  source.addEventListener("hello", (m) => {
    const hello: Hello = JSON.parse((m as MessageEvent<string>).data);
    if (hello.serverId !== serverId) {
      serverId = hello.serverId;
      store.clear();
    }
    offset = hello.now - performance.now();
    devices.value = hello.devices;
    for (const d of hello.devices) {
      store.ensureRow(d.name, "compute");
      store.ensureRow(d.name, "copy");
    }
    storeVersion.value++;
  });
  source.addEventListener("batch", (m) => {
    const batch: Batch = JSON.parse((m as MessageEvent<string>).data);
    store.add(batch.events);
    storeVersion.value++;
  });
  source.addEventListener("state", (m) => {
    const state: State = JSON.parse((m as MessageEvent<string>).data);
    offset = state.now - performance.now();
    stats.value = state.stats;
    timings.value = state.timings;
    run.value = state.run;
    dropped.value = state.dropped;
  });
}
