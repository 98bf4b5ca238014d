/**
 * The event hub: collects trace events, sends them to every connected page as server-sent
 * events in batches (one a frame), and keeps a bounded history for pages that connect
 * later. Clients read from one shared ring of encoded batches, each at its own cursor, so a
 * slow or vanished client costs no memory and never holds up the engine: when it falls
 * behind the ring, the batches it missed are counted and reported to it.
 *
 * @module
 */
import type { Observable, Subscription } from "npm:rxjs@7.8.2";
import { engine } from "../lib/engine/engine.ts";
import { producersWaiting } from "../lib/streams/backpressure.ts";
import { trace$ } from "../lib/trace/trace.ts";
import type {
  Batch,
  DeviceSummary,
  Hello,
  LiveStats,
  RunRecord,
  State,
  TraceEvent,
} from "../components/protocol.ts";
import { windowRates } from "./live_stats.ts";

/** Options of {@link EventHub}. */
export interface EventHubOptions {
  /**
   * Milliseconds between batches.
   * @default {250}
   */
  frameMs?: number;
  /**
   * Most trace events kept for pages that connect later (and for slow readers).
   * @default {100_000}
   */
  historyEvents?: number;
  /**
   * Most batches kept, whatever their size.
   * @default {2048}
   */
  historyBatches?: number;
  /**
   * Most events in one batch message; a busier frame becomes several.
   * @default {5000}
   */
  batchEvents?: number;
  /**
   * Where the events come from.
   * @default {trace$()}
   */
  source?: Observable<TraceEvent>;
  /**
   * The devices the page lists.
   * @default {[]}
   */
  devices?: DeviceSummary[];
}

interface Client {
  cursor: number;
  dropped: number;
  reportedDropped: number;
  stateVersion: number;
  pingVersion: number;
  helloSent: boolean;
  closed: boolean;
  close(): void;
}

const encoder = new TextEncoder();
const STATS_WINDOW_MS = 1000;
const PING_MS = 10_000;

/** Collects trace events and streams them to pages; see the module documentation. */
export class EventHub {
  /** Differs per hub: a page that reconnects to another process starts afresh. */
  readonly serverId: string = crypto.randomUUID().slice(0, 8);
  readonly devices: DeviceSummary[];
  readonly #frameMs: number;
  readonly #historyEvents: number;
  readonly #historyBatches: number;
  readonly #batchEvents: number;
  #ring: { seq: number; count: number; text: Uint8Array }[] = [];
  #ringEvents = 0;
  #nextSeq = 1;
  #pending: TraceEvent[] = [];
  #recent: TraceEvent[] = [];
  #eventsTotal = 0;
  #timings: Record<string, number> = {};
  #run: RunRecord | null = null;
  #stats: LiveStats;
  #stateKey = "";
  #stateVersion = 0;
  #pingVersion = 0;
  #lastPing = performance.now();
  #wake: { promise: Promise<void>; resolve: () => void } = Promise.withResolvers<void>();
  readonly #clients = new Set<Client>();
  #droppedTotal = 0;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #sub: Subscription;

  /**
   * Subscribes to the trace and starts the frame timer; call {@link EventHub.close} to stop.
   *
   * @example
   * ```ts
   * import { EventHub } from "./event_hub.ts";
   * const hub = new EventHub();
   * const reader = hub.connect().getReader();
   * const { value } = await reader.read();
   * console.log(new TextDecoder().decode(value).includes("event: hello")); // true
   * await reader.cancel();
   * hub.close();
   * ```
   */
  constructor(options: EventHubOptions = {}) {
    this.#frameMs = options.frameMs ?? 250;
    this.#historyEvents = options.historyEvents ?? 100_000;
    this.#historyBatches = options.historyBatches ?? 2048;
    this.#batchEvents = options.batchEvents ?? 5000;
    this.devices = options.devices ?? [];
    this.#stats = this.#measure(performance.now());
    this.#sub = (options.source ?? trace$()).subscribe((e) => this.#onEvent(e));
    this.#timer = setInterval(() => this.#frame(), this.#frameMs);
  }

  /** Latest seconds of each benchmarked line ("GPU1 time", ...), by label. */
  timings(): Record<string, number> {
    return { ...this.#timings };
  }

  /** Forgets the seconds of `labels` (a run of their section starts anew). */
  clearTimings(labels: readonly string[]): void {
    for (const l of labels) delete this.#timings[l];
  }

  /** Sets the run the pages show. */
  setRun(run: RunRecord | null): void {
    this.#run = run ? { ...run } : null;
  }

  /** The live figures of the last frame. */
  stats(): LiveStats {
    return this.#stats;
  }

  /** Pages connected now. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Batches that clients missed by reading too slowly, over all clients so far. */
  get droppedTotal(): number {
    return this.#droppedTotal;
  }

  /** Events kept in the history now. */
  get historyEvents(): number {
    return this.#ringEvents;
  }

  /**
   * A server-sent event stream for one page: `hello`, then the history and every new batch
   * (`batch`, with ids), and `state` whenever the figures change. `lastEventId` (the
   * Last-Event-ID of a reconnecting EventSource) resumes after that batch.
   */
  connect(lastEventId?: string | null): ReadableStream<Uint8Array> {
    let cursor = this.#ring[0]?.seq ?? this.#nextSeq;
    const [server, seq] = (lastEventId ?? "").split("/");
    if (server === this.serverId && Number.isInteger(Number(seq))) cursor = Number(seq) + 1;
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const client: Client = {
      cursor,
      dropped: 0,
      reportedDropped: 0,
      stateVersion: -1,
      pingVersion: this.#pingVersion,
      helloSent: false,
      closed: false,
      close: () => {
        if (client.closed) return;
        client.closed = true;
        this.#clients.delete(client);
        try {
          controller.close();
        } catch { /* already closed or cancelled */ }
      },
    };
    this.#clients.add(client);
    return new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
      },
      pull: (c) => this.#pull(client, c),
      cancel: () => {
        client.closed = true;
        this.#clients.delete(client);
      },
    }, { highWaterMark: 0 });
  }

  /** Stops the timer and the subscription, and ends every client's stream. */
  close(): void {
    clearInterval(this.#timer);
    this.#sub.unsubscribe();
    for (const c of [...this.#clients]) c.close();
    this.#wake.resolve();
  }

  /** Gives the client its next message, waiting for the next frame when it has them all. */
  async #pull(client: Client, c: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      if (client.closed) return;
      if (!client.helloSent) {
        client.helloSent = true;
        const hello: Hello = {
          serverId: this.serverId,
          now: performance.now(),
          devices: this.devices,
        };
        c.enqueue(encoder.encode(`retry: 1000\nevent: hello\ndata: ${JSON.stringify(hello)}\n\n`));
        return;
      }
      const first = this.#ring[0]?.seq ?? this.#nextSeq;
      if (client.cursor < first) {
        const missed = first - client.cursor;
        client.dropped += missed;
        this.#droppedTotal += missed;
        client.cursor = first;
      }
      if (client.cursor < this.#nextSeq) {
        c.enqueue(this.#ring[client.cursor - first].text);
        client.cursor++;
        return;
      }
      if (client.stateVersion !== this.#stateVersion || client.reportedDropped !== client.dropped) {
        client.stateVersion = this.#stateVersion;
        client.reportedDropped = client.dropped;
        const state: State = {
          now: performance.now(),
          stats: this.#stats,
          timings: this.#timings,
          run: this.#run,
          dropped: client.dropped,
        };
        c.enqueue(encoder.encode(`event: state\ndata: ${JSON.stringify(state)}\n\n`));
        return;
      }
      if (client.pingVersion !== this.#pingVersion) {
        client.pingVersion = this.#pingVersion;
        c.enqueue(encoder.encode(": ping\n\n"));
        return;
      }
      await this.#wake.promise;
    }
  }

  #onEvent(e: TraceEvent): void {
    this.#pending.push(e);
    this.#eventsTotal++;
    if (e.op === "benchmark" && e.label !== undefined) {
      this.#timings[e.label] = (e.end - e.start) / 1000;
    }
  }

  #frame(): void {
    const now = performance.now();
    const events = this.#pending;
    this.#pending = [];
    for (let i = 0; i < events.length; i += this.#batchEvents) {
      const batch: Batch = { seq: this.#nextSeq++, events: events.slice(i, i + this.#batchEvents) };
      const text = encoder.encode(
        `id: ${this.serverId}/${batch.seq}\nevent: batch\ndata: ${JSON.stringify(batch)}\n\n`,
      );
      this.#ring.push({ seq: batch.seq, count: batch.events.length, text });
      this.#ringEvents += batch.events.length;
    }
    while (
      this.#ring.length > 1 &&
      (this.#ringEvents > this.#historyEvents || this.#ring.length > this.#historyBatches)
    ) {
      this.#ringEvents -= this.#ring.shift()!.count;
    }
    for (const e of events) this.#recent.push(e);
    this.#recent = this.#recent.filter((e) => e.end > now - STATS_WINDOW_MS);
    this.#stats = this.#measure(now);
    const key = JSON.stringify([this.#stats, this.#timings, this.#run]);
    if (key !== this.#stateKey) {
      this.#stateKey = key;
      this.#stateVersion++;
    }
    if (now - this.#lastPing > PING_MS) {
      this.#lastPing = now;
      this.#pingVersion++;
    }
    const wake = this.#wake;
    this.#wake = Promise.withResolvers<void>();
    wake.resolve();
  }

  #measure(now: number): LiveStats {
    const inflight: LiveStats["inflight"] = {};
    for (const [device, l] of Object.entries(engine().load())) {
      inflight[device] = { ops: l.inflight, waiting: l.waiting, bytes: l.inflightBytes };
    }
    return {
      ...windowRates(this.#recent, now, STATS_WINDOW_MS),
      inflight,
      producersWaiting: producersWaiting(),
      eventsTotal: this.#eventsTotal,
    };
  }
}
