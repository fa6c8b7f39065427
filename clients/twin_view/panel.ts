/// <reference lib="dom" />
/**
 * The text panel beside the scene: every widget with its current value and
 * observation time, for screen readers, for tests and for exact numbers.
 *
 * @module
 */
import { formatTime, formatValue } from "./format.ts";
import type { TwinWidget } from "./types.ts";

/** The latest value of a DataKey as the panel needs it (the subscriber's LatestValue fits). */
export interface ShownValue {
  value: unknown;
  observed_at: string;
}

/** The panel of one datasource's widgets. */
export interface Panel {
  /** Shows `values`; widgets whose DataKey is in `changed` are briefly highlighted. */
  update(values: Readonly<Record<string, ShownValue>>, changed: readonly string[]): void;
}

const HIGHLIGHT_MS = 1200;

/** Fills `list` (an `<ol>`) with one item per widget, each showing "no value yet" until values arrive. */
export function createPanel(list: HTMLElement, widgets: readonly TwinWidget[]): Panel {
  list.replaceChildren();
  const rows = widgets.map((widget) => {
    const item = document.createElement("li");
    item.dataset.key = widget.data_key;
    item.dataset.widgetId = widget.id;
    const title = document.createElement("h3");
    title.id = `widget-${widget.id}`;
    title.textContent = widget.name;
    item.setAttribute("aria-labelledby", title.id);
    const meta = document.createElement("p");
    meta.className = "meta";
    const key = document.createElement("code");
    key.textContent = widget.data_key;
    meta.append(key, ` · ${widget.widget_type}`);
    const value = document.createElement("p");
    value.className = "value";
    value.dataset.field = "value";
    value.textContent = formatValue(widget, undefined);
    const observed = document.createElement("time");
    observed.dataset.field = "observed";
    item.append(title, meta, value, observed);
    list.append(item);
    return { widget, item, value, observed, timer: undefined as ReturnType<typeof setTimeout> | undefined };
  });

  return {
    update(values, changed) {
      for (const row of rows) {
        const latest = values[row.widget.data_key];
        if (!latest) continue;
        row.value.textContent = formatValue(row.widget, latest.value);
        row.observed.dateTime = latest.observed_at;
        row.observed.title = latest.observed_at;
        row.observed.textContent = `observed ${formatTime(latest.observed_at)}`;
        if (!changed.includes(row.widget.data_key)) continue;
        // Restart the highlight animation: drop the class, let the browser see it gone, add it again.
        row.item.classList.remove("changed");
        void row.item.offsetWidth;
        row.item.classList.add("changed");
        clearTimeout(row.timer);
        row.timer = setTimeout(() => row.item.classList.remove("changed"), HIGHLIGHT_MS);
      }
    },
  };
}
