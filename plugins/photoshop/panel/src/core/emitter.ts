// A small typed event emitter: UXP has no Node 'events' module, and the panel needs only this.

type Handler<A extends unknown[]> = (...args: A) => void;

export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  private handlers: { [K in keyof E]?: Array<Handler<E[K]>> } = {};
  /** A handler threw: reported here, and the other handlers still run. */
  onError: (e: unknown) => void = (e) => console.error("kiln panel:", e);

  /** Registers `fn`; returns a function that removes it. */
  on<K extends keyof E>(name: K, fn: Handler<E[K]>): () => void {
    (this.handlers[name] ??= []).push(fn);
    return () => {
      this.handlers[name] = (this.handlers[name] ?? []).filter((h) => h !== fn);
    };
  }

  emit<K extends keyof E>(name: K, ...args: E[K]): void {
    for (const fn of [...(this.handlers[name] ?? [])]) {
      try {
        fn(...args);
      } catch (e) {
        this.onError(e);
      }
    }
  }
}
