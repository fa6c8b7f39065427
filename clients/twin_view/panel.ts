/// <reference lib="dom" />
/**
 * The text panel beside the scene: every widget with its current value and
 * observation time, for screen readers, for tests and for exact numbers; and
 * under each numeric SingleData and DoubleData field, its last hour as a
 * sparkline with the range it spans.
 *
 * @module
 */
import { formatApprox, formatTime, formatValue } from "./format.ts";
import { sparklinePath, trendRange } from "./sparkline.ts";
import { TREND_WINDOW_MS, trendKeys, trendNumbers, type Trends } from "./trends.ts";
import type { ShownValue, TwinWidget } from "./types.ts";

export type { ShownValue };

/** The panel of one datasource's widgets. */
export interface Panel {
  /** Shows `values`; widgets whose DataKey is in `changed` are briefly highlighted. */
  update(values: Readonly<Record<string, ShownValue>>, changed: readonly string[]): void;
  /** Draws the sparklines again from the trends at `now` (epoch ms): history came, or the window slid. */
  drawTrends(now: number): void;
}

const HIGHLIGHT_MS = 1200;
/** The sparklines' drawing box (the SVG stretches it to the panel's width). */
const SPARK = { width: 240, height: 32 };

/** One sparkline of the panel: the series it draws and its elements. */
interface TrendFigure {
  key: string;
  figure: HTMLElement;
  path: SVGPathElement;
  caption: HTMLElement;
  label: string;
}

/** Fills `list` (an `<ol>`) with one item per widget, each showing "no value yet" until values arrive. */
export function createPanel(list: HTMLElement, widgets: readonly TwinWidget[], trends: Trends): Panel {
  list.replaceChildren();
  let shown: Readonly<Record<string, ShownValue>> = {};
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
    const figures = trendKeys(widget).map((k) => trendFigure(widget, k));
    item.append(title, meta, value, ...figures.map((f) => f.figure), observed);
    list.append(item);
    return { widget, item, value, observed, figures, timer: undefined as ReturnType<typeof setTimeout> | undefined };
  });

  function drawTrends(now: number) {
    for (const row of rows) {
      for (const figure of row.figures) drawFigure(figure, trends, currentNumber(row.widget, figure.key, shown), now);
    }
  }

  return {
    update(values, changed) {
      shown = values;
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
      drawTrends(Date.now());
    },
    drawTrends,
  };
}

/** A sparkline's figure, hidden until its series has a point. */
function trendFigure(widget: TwinWidget, key: string): TrendFigure {
  const figure = document.createElement("figure");
  figure.className = "trend";
  figure.dataset.series = key;
  figure.hidden = true;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("viewBox", `0 0 ${SPARK.width} ${SPARK.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  svg.append(path);
  const caption = document.createElement("figcaption");
  figure.append(svg, caption);
  const label = widget.widget_type === "DoubleData" ? `${key.slice(widget.data_key.length + 1)} · ` : "";
  return { key, figure, path, caption, label };
}

/** Draws a sparkline and its caption: the range of the hour's buckets and of the current value. */
function drawFigure(figure: TrendFigure, trends: Trends, current: number | undefined, now: number): void {
  const points = trends.series(figure.key)?.points() ?? [];
  figure.figure.hidden = points.length === 0;
  figure.figure.dataset.points = String(points.length);
  figure.path.setAttribute("d", sparklinePath(points, { from: now - TREND_WINDOW_MS, to: now, ...SPARK }));
  const range = trendRange(points, [current]);
  if (!range) return;
  figure.figure.dataset.low = String(range.low);
  figure.figure.dataset.high = String(range.high);
  figure.caption.textContent = `${figure.label}last hour ${formatApprox(range.low)} – ${formatApprox(range.high)}`;
}

/** The number a series has now: the SingleData value, or the DoubleData field. */
function currentNumber(
  widget: TwinWidget,
  key: string,
  values: Readonly<Record<string, ShownValue>>,
): number | undefined {
  return new Map(trendNumbers(widget, values[widget.data_key]?.value)).get(key);
}
