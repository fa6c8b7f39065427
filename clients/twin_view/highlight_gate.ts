/**
 * Which changes the page highlights: none of the first read (it shows what
 * was stored before the page opened, not changes: every widget flashed on
 * load), every one once the subscriber has reported `live`.
 *
 * @module
 */

/** Passes the changed DataKeys on once the watch has been live. */
export interface HighlightGate {
  /** Give it every status the subscriber reports. */
  status(status: string): void;
  /** True until the first `live`: the values are the first read's. */
  readonly initial: boolean;
  /** The DataKeys to highlight among `changed`: none before the first `live`. */
  highlighted(changed: readonly string[]): readonly string[];
}

/** A gate, closed until the first `live`. */
export function createHighlightGate(): HighlightGate {
  let live = false;
  return {
    status(status) {
      if (status === "live") live = true;
    },
    get initial() {
      return !live;
    },
    highlighted: (changed) => live ? changed : [],
  };
}
