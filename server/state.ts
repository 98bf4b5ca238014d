/**
 * What the routes share: the event hub, the run manager and the islands' bundle.
 *
 * @module
 */
import type { EventHub } from "./event_hub.ts";
import type { RunManager } from "./runs.ts";

/** The dashboard's server-side state, handed to each route. */
export interface DashboardState {
  hub: EventHub;
  runs: RunManager;
  /** The islands' browser bundle (made once, on first use). */
  islandsBundle: () => Promise<string>;
}
