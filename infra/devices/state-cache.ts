// A two-tier, least-recently-used cache of folded states for the ingest path (the batch
// writer's device states, device_summary's projection states). The most recent `hot` entries
// are kept as objects, ready to use; older ones, up to `cold` more, only as their JSON text,
// parsed again when asked for. A state object of a device costs the heap ≈ 4–5 KB, its JSON
// ≈ 1.7 KB and no pointers for the garbage collector to trace; parsing it back (≈ 10 µs) is
// much cheaper than reading it back from PostgreSQL, which is what a miss costs. So a fleet of
// 10,000 devices reporting in turn fits in memory without holding 10,000 object graphs.

/** Sizes of the two tiers (entries). */
export type StateCacheSizes = { hot: number; cold: number };

type Entry<T> = { value: T; json: string | undefined };

/** The cache: keys are device uuids (or projection keys). */
export class StateCache<T> {
  readonly #hot = new Map<string, Entry<T>>();
  readonly #cold = new Map<string, string>();
  readonly #sizes: StateCacheSizes;

  constructor(sizes: StateCacheSizes) {
    this.#sizes = sizes;
  }

  /** The value (a parsed copy when it was cold: it becomes hot again); undefined when absent. */
  get(key: string): T | undefined {
    const hot = this.#hot.get(key);
    if (hot !== undefined) {
      // used: now the newest (a Map keeps insertion order)
      this.#hot.delete(key);
      this.#hot.set(key, hot);
      return hot.value;
    }
    const json = this.#cold.get(key);
    if (json === undefined) return undefined;
    this.#cold.delete(key);
    const value = JSON.parse(json) as T;
    this.#setHot(key, { value, json });
    return value;
  }

  has(key: string): boolean {
    return this.#hot.has(key) || this.#cold.has(key);
  }

  /**
   * Keeps `value` as the newest entry. `json`, when given, must be JSON.stringify(value): it
   * spares the stringify when the entry later turns cold.
   */
  set(key: string, value: T, json?: string): void {
    this.#cold.delete(key);
    this.#setHot(key, { value, json });
  }

  delete(key: string): void {
    this.#hot.delete(key);
    this.#cold.delete(key);
  }

  clear(): void {
    this.#hot.clear();
    this.#cold.clear();
  }

  /** Entries held, hot and cold. */
  get size(): number {
    return this.#hot.size + this.#cold.size;
  }

  #setHot(key: string, entry: Entry<T>): void {
    this.#hot.delete(key);
    if (this.#sizes.hot <= 0) {
      this.#setCold(key, entry);
      return;
    }
    this.#hot.set(key, entry);
    if (this.#hot.size <= this.#sizes.hot) return;
    // Map iteration is insertion order: the first key is the least recently used
    const [oldestKey, oldest] = this.#hot.entries().next().value!;
    this.#hot.delete(oldestKey);
    this.#setCold(oldestKey, oldest);
  }

  #setCold(key: string, entry: Entry<T>): void {
    if (this.#sizes.cold <= 0) return;
    this.#cold.set(key, entry.json ?? JSON.stringify(entry.value));
    if (this.#cold.size > this.#sizes.cold) this.#cold.delete(this.#cold.keys().next().value!);
  }
}
