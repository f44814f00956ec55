/**
 * Who closes what, and in which order. Each resource registers its close right after it is created; `closeAll()`
 * runs them in reverse order of registration (the last created, which may use the earlier ones, closes first), on
 * every path: a start that fails half-way, a signal, a test's teardown. Like avvio's onClose in fastify.
 *
 * Contract: closers run one at a time; a closer that throws or rejects is logged and the others still run; the first
 * failure is rethrown once all have run. `closeAll()` called again returns the first call's promise. A resource
 * registered after closeAll() began is closed at once (a start that raced a close leaks nothing).
 */
import type { Logger } from '../log/index.js';

export type Closer = () => void | Promise<void>;

export class ResourceStack {
  readonly #closers: Array<{ name: string; close: Closer }> = [];
  readonly #log: Logger;
  #closing: Promise<void> | null = null;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Registers `close` for the resource just created; returns the resource, so creation and registration are one line. */
  defer<T>(name: string, resource: T, close: (resource: T) => void | Promise<void>): T {
    const closer = { name, close: () => close(resource) };
    if (this.#closing) void this.#run(closer).catch(() => undefined);
    else this.#closers.push(closer);
    return resource;
  }

  /** Names of the registered resources in the order they will be closed. */
  closeOrder(): string[] {
    return this.#closers.map((c) => c.name).reverse();
  }

  /** Closes every registered resource, last registered first. */
  closeAll(): Promise<void> {
    this.#closing ??= this.#closeInReverse();
    return this.#closing;
  }

  async #closeInReverse(): Promise<void> {
    let first: unknown = null;
    while (this.#closers.length > 0) {
      const closer = this.#closers.pop()!;
      try {
        await this.#run(closer);
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== null) throw first;
  }

  async #run(closer: { name: string; close: Closer }): Promise<void> {
    try {
      await closer.close();
      this.#log.debug({ resource: closer.name }, 'closed');
    } catch (err) {
      this.#log.error({ err, resource: closer.name }, 'closing a resource failed');
      throw err;
    }
  }
}
