/**
 * The device Worker's one bind-group cache, shared by op batches and replayed segments: a
 * group is found by its pipeline and the buffers (and bound sizes) it binds, whoever
 * dispatches it. It is bounded, and what it drops is collected when the Worker is idle.
 *
 * @module
 */
import { collectGarbage } from "./collect_garbage.ts";
import { UNIFORM_STRIDE } from "./uniform_ring.ts";

/**
 * Cached bind groups kept before the cache starts over. Uncaptured steps make about three new
 * buffer pairings a batch (pooled buffers come back in other pairings), and each group holds
 * native memory (about 8 KiB on lavapipe): the cache stays small, and what it drops is
 * collected when the Worker is idle (RSS grew 25 MiB per 1,000 MLP steps with 8,192 kept).
 */
export const MAX_BIND_GROUPS = 2048;

/** What a bind group is made for: a pipeline (with a number of its own) and its layout. */
export interface Bindable {
  /** A number per pipeline, for the cache's keys. */
  id: number;
  pipeline: GPUComputePipeline;
}

/**
 * The group a dispatch site (a kernel of a segment) found last, to find it again without a
 * key: valid while the cache's generation is the same and the buffers are the same.
 */
export interface BindGroupMemo {
  generation: number;
  buffers: readonly GPUBuffer[];
  group: GPUBindGroup;
}

/**
 * Bind groups by pipeline and bound buffers. A group goes when one of its buffers is
 * destroyed ({@link BindGroupCache.forget}), and all go once {@link MAX_BIND_GROUPS} are kept.
 *
 * @example
 * ```ts
 * import { BindGroupCache } from "./bind_groups.ts";
 * // Stand-ins for a device, a pipeline and two buffers.
 * const device = { createBindGroup: () => ({}) } as unknown as GPUDevice;
 * const pipeline = { getBindGroupLayout: () => ({}) } as unknown as GPUComputePipeline;
 * const [a, b] = [{}, {}] as GPUBuffer[];
 * const cache = new BindGroupCache(device);
 * const group = cache.get({ id: 1, pipeline }, [a, b], [16, 16], undefined);
 * console.log(cache.get({ id: 1, pipeline }, [a, b], [16, 16], undefined) === group); // true
 * cache.forget(a);
 * console.log(cache.size, cache.made); // 0 1
 * ```
 */
export class BindGroupCache {
  readonly #device: GPUDevice;
  readonly #groups = new Map<string, GPUBindGroup>();
  /** The keys of the groups that bind each buffer. */
  readonly #groupsOf = new Map<GPUBuffer, string[]>();
  readonly #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;
  /** Groups dropped since the last collection. */
  #dropped = 0;
  /** Groups made so far (found ones are not counted). */
  made = 0;
  /** Changes whenever a group leaves the cache, so that memos of it are stale. */
  #generation = 0;

  /** A cache of groups made on `device`. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Groups kept. */
  get size(): number {
    return this.#groups.size;
  }

  /**
   * The group binding `buffers` (bound at `sizes`) in order, then `uniforms` (256 bytes from
   * offset 0, moved by a dynamic offset) when given. Made anew, not cached, when `cacheable`
   * is false (uniforms in a buffer that lives for one batch only).
   */
  get(
    target: Bindable,
    buffers: readonly GPUBuffer[],
    sizes: readonly number[],
    uniforms: GPUBuffer | undefined,
    cacheable = true,
  ): GPUBindGroup {
    if (!cacheable) return this.#make(target, buffers, sizes, uniforms);
    // The uniforms' buffer is the device's one ring whenever a group is cached.
    let key = `${target.id}`;
    for (let i = 0; i < buffers.length; i++) key += `|${this.#idOf(buffers[i])}:${sizes[i]}`;
    let group = this.#groups.get(key);
    if (!group) {
      if (this.#groups.size >= MAX_BIND_GROUPS) {
        // Their native memory goes only with their wrappers: collected when idle (below).
        this.#dropped += this.#groups.size;
        this.clear();
      }
      group = this.#make(target, buffers, sizes, uniforms);
      this.#groups.set(key, group);
      for (const b of buffers) {
        const keys = this.#groupsOf.get(b);
        if (keys) keys.push(key);
        else this.#groupsOf.set(b, [key]);
      }
    }
    return group;
  }

  /**
   * As {@link get} for a cached group, first trying `memo`, the site's last group; the memo
   * is updated. A replayed segment's kernels bind the same buffers run after run: no key.
   */
  getMemo(
    target: Bindable,
    buffers: readonly GPUBuffer[],
    sizes: readonly number[],
    uniforms: GPUBuffer | undefined,
    memo: { last?: BindGroupMemo },
  ): GPUBindGroup {
    const last = memo.last;
    if (
      last !== undefined && last.generation === this.#generation &&
      last.buffers.every((b, i) => b === buffers[i])
    ) return last.group;
    const group = this.get(target, buffers, sizes, uniforms);
    memo.last = { generation: this.#generation, buffers, group };
    return group;
  }

  /** Drops the groups of a buffer about to be destroyed. */
  forget(buffer: GPUBuffer): void {
    const keys = this.#groupsOf.get(buffer);
    if (!keys) return;
    for (const key of keys) this.#groups.delete(key);
    this.#groupsOf.delete(buffer);
    this.#generation++;
  }

  /**
   * The Worker is idle: when groups were dropped since the last time, collects them (see
   * collect_garbage.ts), since the native memory of a dropped group goes only with its
   * wrapper. At most once per {@link MAX_BIND_GROUPS} groups made.
   */
  collectDropped(): void {
    if (this.#dropped === 0) return;
    this.#dropped = 0;
    collectGarbage();
  }

  /** Drops every group. */
  clear(): void {
    this.#groups.clear();
    this.#groupsOf.clear();
    this.#generation++;
  }

  #make(
    target: Bindable,
    buffers: readonly GPUBuffer[],
    sizes: readonly number[],
    uniforms: GPUBuffer | undefined,
  ): GPUBindGroup {
    this.made++;
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({
      binding,
      resource: { buffer, size: sizes[binding] },
    }));
    if (uniforms) {
      entries.push({
        binding: entries.length,
        resource: { buffer: uniforms, offset: 0, size: UNIFORM_STRIDE },
      });
    }
    return this.#device.createBindGroup({ layout: target.pipeline.getBindGroupLayout(0), entries });
  }

  #idOf(b: GPUBuffer): number {
    let id = this.#bufferIds.get(b);
    if (id === undefined) {
      id = this.#nextBufferId++;
      this.#bufferIds.set(b, id);
    }
    return id;
  }
}
