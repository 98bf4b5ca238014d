/**
 * Marks where an island goes: the server renders the island inside an element that names
 * it and carries its props as JSON, and the browser hydrates it there.
 *
 * @module
 */
import { type ComponentType, h, type VNode } from "npm:preact@10.29.8";

/** Props of {@link Island}. */
export interface IslandProps<P> {
  /** The name `islands/client.ts` knows the island by. */
  name: string;
  component: ComponentType<P>;
  /** Serialisable props (they travel as JSON). */
  props: P;
}

/**
 * Renders `component` with `props` inside `<div data-island data-props>`.
 *
 * @example
 * ```ts
 * import { renderToString } from "npm:preact-render-to-string@6.8.2";
 * import { h } from "npm:preact@10.29.8";
 * import { Island } from "./Island.tsx";
 * const Hello = (p: { who: string }) => h("b", null, p.who);
 * const html = renderToString(Island({ name: "Hello", component: Hello, props: { who: "<x>" } }));
 * console.log(html.includes("&lt;x>")); // true
 * ```
 */
export function Island<P>({ name, component, props }: IslandProps<P>): VNode {
  return (
    <div data-island={name} data-props={JSON.stringify(props)}>
      {h(component as ComponentType<Record<string, unknown>>, props as Record<string, unknown>)}
    </div>
  );
}
