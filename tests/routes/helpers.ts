// Shared by the route tests: a dashboard on the real devices, requests to it, and a reader
// of its server-sent events.
import assert from "node:assert/strict";
import { tryAllGpus } from "../../mod.ts";
import { createDashboard, type Dashboard } from "../../server/app.ts";

export const ORIGIN = "http://127.0.0.1:8000";

/** A dashboard on the machine's devices, without the browser bundle. */
export async function dashboard(options: { trainSamples?: number } = {}): Promise<Dashboard> {
  return createDashboard({
    ...options,
    devices: await tryAllGpus(),
    bundle: () => Promise.resolve("/* no bundle in route tests */"),
    hub: { frameMs: 50 },
  });
}

/** A POST of `body` (JSON unless it is a string) to `path`, from the page's own origin. */
export function post(path: string, body: unknown, headers: Record<string, string> = {}): Request {
  return new Request(`${ORIGIN}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: ORIGIN, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Asserts each body gets a 400 whose error matches its pattern, and that no run started. */
export async function assertBadRequests(d: Dashboard, cases: [unknown, RegExp][]): Promise<void> {
  for (const [body, message] of cases) {
    const response = await d.fetch(post("/api/runs", body));
    assert.equal(response.status, 400, JSON.stringify(body));
    assert.match((await response.json()).error, message);
  }
  assert.equal(d.state.runs.busy, false, "no run started");
}

/** One server-sent event. */
export interface Message {
  event: string;
  data: string;
  id?: string;
}

/** Reads server-sent events from a response body, one at a time. */
export function messages(body: ReadableStream<Uint8Array>): {
  next(): Promise<Message | undefined>;
  cancel(): Promise<void>;
} {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    async next() {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const m: Message = { event: "message", data: "" };
          for (const line of block.split("\n")) {
            const [field, ...rest] = line.split(": ");
            const value = rest.join(": ");
            if (field === "event") m.event = value;
            else if (field === "data") m.data += value;
            else if (field === "id") m.id = value;
          }
          if (m.data !== "") return m;
          continue;
        }
        const { value, done } = await reader.read();
        if (done) return undefined;
        buffer += decoder.decode(value, { stream: true });
      }
    },
    cancel: () => reader.cancel(),
  };
}
