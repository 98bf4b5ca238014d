/**
 * The browser entry, bundled with `deno bundle` when the server starts: hydrates every
 * element the server marked with `data-island` with its island and the props it rendered.
 *
 * @module
 */
import { type ComponentType, h, hydrate } from "npm:preact@10.29.8";
import { LiveFigures } from "./LiveFigures.tsx";
import { RunPanel } from "./RunPanel.tsx";
import { TaskStream } from "./TaskStream.tsx";

// Every island, by the name the server gives it.
// deno-lint-ignore no-explicit-any
const islands: Record<string, ComponentType<any>> = { LiveFigures, RunPanel, TaskStream };

for (const el of document.querySelectorAll<HTMLElement>("[data-island]")) {
  const island = islands[el.dataset.island ?? ""];
  if (island) hydrate(h(island, JSON.parse(el.dataset.props ?? "{}")), el);
}
